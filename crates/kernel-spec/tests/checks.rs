//! Each check fires with its message; specs are built from TOML strings.

use std::path::Path;

use kernel_spec::{check, check_with, parse_file, CheckKind, KernelSpec, SeqOp, SpecError};

fn spec(file: &str, text: &str) -> KernelSpec {
    let mut v = parse_file(Path::new(file), text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn matmul(extra: &str, tiling: &str) -> KernelSpec {
    spec(
        "kernel-specs/matmul.toml",
        &format!(
            "[[kernel]]\nname = \"enc_fc1\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nm = 1536\nk = 512\nn = 2048\nbias = true\n{extra}\n[kernel.tiling]\n{tiling}\n"
        ),
    )
}

const GOOD: &str = "tile_m = 32\ntile_k = 64\ntile_n = 64\ncolumns = 4\nrows = 4";

fn fails(s: &KernelSpec, kind: CheckKind) -> String {
    let e = check(s).expect_err("check must fail");
    assert_eq!(e.kind, kind, "{e}");
    e.to_string()
}

#[test]
fn a_good_entry_passes_and_reports_its_resources() {
    let u = check(&matmul("", GOOD)).unwrap();
    // A 2x4 KiB + B 2x8 KiB + C 2x4 KiB + f32 accumulator 8 KiB + 2 KiB stack.
    assert_eq!(u.core_data_bytes, 42 * 1024);
    // A staging 2x16 KiB + B 2x8 KiB + C 2x16 KiB.
    assert_eq!(u.memtile_bytes, 80 * 1024);
    assert_eq!(u.cores, 16);
    assert_eq!(u.columns, 4);
    assert!(u.dma_channels > 0 && u.ddr_bytes > 0);
    // GELU needs exp: on npu1 (aie2) mlir-aie's lookup tables take 5248 bytes of every core.
    let g = check(&matmul("gelu = true", GOOD)).unwrap();
    assert_eq!(g.core_data_bytes, 42 * 1024 + 5248);
    let mut on_npu2 = matmul(
        "gelu = true",
        "tile_m = 32\ntile_k = 64\ntile_n = 64\ncolumns = 8\nrows = 4",
    );
    on_npu2.device = kernel_spec::Device::Npu2;
    assert_eq!(check(&on_npu2).unwrap().core_data_bytes, 42 * 1024);
}

#[test]
fn core_memory_overflow_names_file_entry_need_limit_and_fix() {
    let s = matmul(
        "",
        "tile_m = 64\ntile_k = 128\ntile_n = 64\ncolumns = 4\nrows = 4",
    );
    let msg = fails(&s, CheckKind::CoreMemory);
    assert!(msg.starts_with("kernel-specs/matmul.toml: entry \"enc_fc1\": A tiles+B tiles+C tiles+accumulator + 2 KiB stack need 98 KiB of core data memory"), "{msg}");
    assert!(msg.contains("npu1 has 64 KiB; lower tile_k"), "{msg}");
}

#[test]
fn fifo_depth_counts_in_core_memory() {
    // Fits with depth 2 (42 KiB), not with depth 4 (74 KiB).
    let s = matmul("", &format!("{GOOD}\ndepth = 4"));
    let msg = fails(&s, CheckKind::CoreMemory);
    assert!(msg.contains("need 74 KiB"), "{msg}");
}

#[test]
fn rows_not_dividing_the_tile_ask_for_padding() {
    let s = spec(
        "kernel-specs/matmul.toml",
        &format!("[[kernel]]\nname = \"enc_fc1\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nm = 1500\nk = 512\nn = 2048\n[kernel.tiling]\n{GOOD}\n"),
    );
    let msg = fails(&s, CheckKind::Divisibility);
    assert!(
        msg.contains(
            "rows (m) = 1500 does not divide into tiles of tile_m = 32; set pad_m_to = 1504"
        ),
        "{msg}"
    );
    // Padded, the entry passes.
    let s = matmul("", &format!("{GOOD}\npad_m_to = 1536"));
    check(&s).unwrap();
}

#[test]
fn padding_smaller_than_the_shape_is_rejected() {
    let s = matmul("", &format!("{GOOD}\npad_m_to = 1024"));
    let msg = fails(&s, CheckKind::Shape);
    assert!(
        msg.contains("pad_m_to = 1024 is smaller than m = 1536"),
        "{msg}"
    );
}

#[test]
fn blocks_must_spread_over_the_array() {
    // 1536/32 = 48 row blocks over 4 rows, but 2048/64 = 32 column blocks over 3 columns: fall
    // back to the m-split (48 % 12 == 0) which works; 1504 rows (47 blocks) cannot spread.
    let s = matmul(
        "",
        "tile_m = 32\ntile_k = 64\ntile_n = 64\ncolumns = 3\nrows = 4",
    );
    check(&s).unwrap();
    let s = spec(
        "kernel-specs/matmul.toml",
        "[[kernel]]\nname = \"odd\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nm = 1504\nk = 512\nn = 2048\n[kernel.tiling]\ntile_m = 32\ntile_k = 64\ntile_n = 64\ncolumns = 4\nrows = 4\n",
    );
    let msg = fails(&s, CheckKind::Divisibility);
    assert!(
        msg.contains("47 row blocks x 32 column blocks do not spread over 4 columns x 4 rows"),
        "{msg}"
    );
    assert!(msg.contains("set pad_m_to = 1536"), "{msg}");
}

#[test]
fn tiles_must_fit_the_mmul_shape() {
    let s = matmul(
        "",
        "tile_m = 36\ntile_k = 64\ntile_n = 64\ncolumns = 4\nrows = 4\npad_m_to = 1548",
    );
    let msg = fails(&s, CheckKind::Divisibility);
    assert!(
        msg.contains("tile_m = 36 is not a multiple of 8 (bf16 aie::mmul<4,8,4> on aie2"),
        "{msg}"
    );
}

#[test]
fn too_many_columns_or_rows() {
    let msg = fails(
        &matmul(
            "",
            "tile_m = 32\ntile_k = 64\ntile_n = 64\ncolumns = 8\nrows = 4",
        ),
        CheckKind::Grid,
    );
    assert!(
        msg.ends_with("uses 8 columns, npu1 has 4; lower columns to 4"),
        "{msg}"
    );
    let msg = fails(
        &matmul(
            "",
            "tile_m = 32\ntile_k = 64\ntile_n = 64\ncolumns = 4\nrows = 5",
        ),
        CheckKind::Grid,
    );
    assert!(
        msg.contains("uses 5 core rows per column, npu1 has 4"),
        "{msg}"
    );
    // npu2 has 8 columns.
    let mut s = matmul(
        "",
        "tile_m = 32\ntile_k = 64\ntile_n = 64\ncolumns = 8\nrows = 4",
    );
    s.device = kernel_spec::Device::Npu2;
    check(&s).unwrap();
}

#[test]
fn object_fifo_depth_limit() {
    let msg = fails(
        &matmul("", &format!("{GOOD}\ndepth = 5")),
        CheckKind::FifoDepth,
    );
    assert!(
        msg.contains("object-FIFO depth 5 is outside 1..=4"),
        "{msg}"
    );
    fails(
        &matmul("", &format!("{GOOD}\ndepth = 0")),
        CheckKind::FifoDepth,
    );
}

#[test]
fn memtile_overflow() {
    // With the real 512 KiB mem tile the core limit binds first; a smaller one shows the check.
    let s = matmul("", GOOD);
    let small = kernel_spec::Limits {
        memtile_bytes: 64 * 1024,
        ..s.device.limits()
    };
    let e = check_with(&s, &small).unwrap_err();
    assert_eq!(e.kind, CheckKind::MemTileMemory);
    assert!(
        e.to_string().contains("mem-tile staging needs 80 KiB"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("npu1 has 64 KiB; lower rows or the tile sizes"),
        "{e}"
    );
}

#[test]
fn dma_channels_per_tile() {
    // Each core row of a column needs its own mem-tile input (C join) and output (A split):
    // 4 rows use all 6 + 6 mem-tile channels of npu1.
    let s = matmul("", GOOD);
    let fewer = kernel_spec::Limits {
        memtile_dma_in: 5,
        ..s.device.limits()
    };
    let e = check_with(&s, &fewer).unwrap_err();
    assert_eq!(e.kind, CheckKind::DmaChannels);
    assert!(
        e.to_string()
            .contains("needs 6 mem tile input DMA channels, npu1 has 5"),
        "{e}"
    );
    let s3 = matmul(
        "",
        "tile_m = 32\ntile_k = 64\ntile_n = 64\ncolumns = 4\nrows = 2",
    );
    check_with(&s3, &fewer).unwrap();
    let one_in = kernel_spec::Limits {
        core_dma_in: 1,
        ..s.device.limits()
    };
    let e = check_with(&s, &one_in).unwrap_err();
    assert!(
        e.to_string()
            .contains("needs 2 core tile input DMA channels, npu1 has 1"),
        "{e}"
    );
}

#[test]
fn buffer_descriptors_and_locks() {
    let s = matmul("", GOOD);
    let few_bds = kernel_spec::Limits {
        core_bds: 4,
        ..s.device.limits()
    };
    let e = check_with(&s, &few_bds).unwrap_err();
    assert_eq!(e.kind, CheckKind::BufferDescriptors);
    assert!(
        e.to_string()
            .contains("needs 6 buffer descriptors per core tile, npu1 has 4; lower depth"),
        "{e}"
    );
    let few_locks = kernel_spec::Limits {
        core_locks: 4,
        ..s.device.limits()
    };
    let e = check_with(&s, &few_locks).unwrap_err();
    assert_eq!(e.kind, CheckKind::Locks);
    // The shim: a chunk of output tiles must fit the shim's buffer descriptors.
    let tiny_shim = kernel_spec::Limits {
        shim_bds: 3,
        ..s.device.limits()
    };
    let e = check_with(&s, &tiny_shim).unwrap_err();
    assert_eq!(e.kind, CheckKind::BufferDescriptors);
    assert!(
        e.to_string().contains("transfers in flight per shim tile"),
        "{e}"
    );
}

#[test]
fn residual_needs_square_tiles_and_bf16() {
    let s = matmul(
        "residual = true",
        "tile_m = 32\ntile_k = 32\ntile_n = 64\ncolumns = 4\nrows = 4",
    );
    let msg = fails(&s, CheckKind::Shape);
    assert!(msg.contains("tile_n (64) must equal tile_k (32)"), "{msg}");
    let s = spec(
        "kernel-specs/matmul.toml",
        &format!("[[kernel]]\nname = \"q\"\ndevice = \"npu1\"\ndtype = \"int8\"\nm = 1536\nk = 512\nn = 512\nresidual = true\nquant = {{ weight_scale = \"per_tensor\", requantize_output = true }}\n[kernel.tiling]\n{GOOD}\n"),
    );
    let msg = fails(&s, CheckKind::Unsupported);
    assert!(
        msg.contains("int8 matmul cannot fuse the residual"),
        "{msg}"
    );
}

#[test]
fn split_weights_double_the_weight_traffic_and_need_bf16() {
    let plain = check(&matmul("", GOOD)).unwrap();
    let split = check(&matmul("split_weights = true", GOOD)).unwrap();
    // Same tiles in every memory; only the host transfers of W grow (2 planes of 512x2048 bf16).
    assert_eq!(split.core_data_bytes, plain.core_data_bytes);
    assert_eq!(split.memtile_bytes, plain.memtile_bytes);
    let w_bytes = 512 * 2048 * 2;
    let w_reads = (1536 / (32 * 4)) as u64; // every row group re-reads the weights
    assert_eq!(split.ddr_bytes - plain.ddr_bytes, w_reads * w_bytes);
    let s = spec(
        "kernel-specs/matmul.toml",
        &format!("[[kernel]]\nname = \"q\"\ndevice = \"npu1\"\ndtype = \"int8\"\nm = 1536\nk = 512\nn = 512\nsplit_weights = true\nquant = {{ weight_scale = \"per_channel\", requantize_output = false }}\n[kernel.tiling]\n{GOOD}\n"),
    );
    let msg = fails(&s, CheckKind::Unsupported);
    assert!(
        msg.contains("split_weights applies to dtype = \"bf16\" only"),
        "{msg}"
    );
}

#[test]
fn int8_needs_quant_and_bf16_refuses_it() {
    let s = spec(
        "kernel-specs/matmul.toml",
        &format!("[[kernel]]\nname = \"q\"\ndevice = \"npu1\"\ndtype = \"int8\"\nm = 1536\nk = 512\nn = 512\n[kernel.tiling]\n{GOOD}\n"),
    );
    assert!(fails(&s, CheckKind::Unsupported).contains("needs a [kernel.quant] table"));
    let s = matmul(
        "quant = { weight_scale = \"per_channel\", requantize_output = false }",
        GOOD,
    );
    assert!(fails(&s, CheckKind::Unsupported).contains("applies only to dtype = \"int8\""));
}

#[test]
fn attention_checks() {
    let att = |tiling: &str| {
        spec(
            "kernel-specs/attention.toml",
            &format!("[[kernel]]\nname = \"enc_attn\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nkind = \"encoder\"\nheads = 8\nhead_dim = 64\nq_len = 1500\nkv_len = 1500\n[kernel.tiling]\n{tiling}\n"),
        )
    };
    check(&att(
        "tile_m = 32\ntile_n = 32\ncolumns = 4\nrows = 4\npad_m_to = 1536\npad_n_to = 1536",
    ))
    .unwrap();
    let msg = fails(
        &att("tile_m = 64\ntile_n = 64\ncolumns = 4\nrows = 4\npad_m_to = 1536\npad_n_to = 1536"),
        CheckKind::CoreMemory,
    );
    assert!(
        msg.contains("npu1 has 64 KiB; lower tile_n or tile_m"),
        "{msg}"
    );
    let msg = fails(
        &att("tile_m = 32\ntile_n = 32\ncolumns = 3\nrows = 4\npad_m_to = 1536\npad_n_to = 1536"),
        CheckKind::Divisibility,
    );
    assert!(
        msg.contains("8 heads do not spread evenly over 3 columns"),
        "{msg}"
    );
    let msg = fails(
        &att("tile_m = 32\ntile_n = 32\ncolumns = 4\nrows = 4\npad_m_to = 1536"),
        CheckKind::Divisibility,
    );
    assert!(
        msg.contains(
            "kv_len = 1500 does not divide into tiles of tile_n = 32; set pad_n_to = 1504"
        ),
        "{msg}"
    );
}

#[test]
fn attention_parameters_ride_in_the_kv_stream() {
    // 8 heads x 64 over 4 columns, 448 keys in 14 blocks of 32, 2 query groups per column.
    let s = spec(
        "kernel-specs/attention.toml",
        "[[kernel]]\nname = \"self_attn\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nkind = \"causal_self\"\nheads = 8\nhead_dim = 64\nq_len = 16\nkv_len = 448\n[kernel.tiling]\ntile_m = 8\ntile_n = 32\ncolumns = 4\nrows = 1\n",
    );
    let kv_elems = 2 * 32 * 64;
    let params_at = 8 * 14 * kv_elems;
    let p = kernel_spec::plan(&s).unwrap();
    let ops = &p.sequence.as_ref().expect("attention has a sequence").ops;
    // Per column since its last wait: (argument, offset, sizes, BD id).
    type Transfer<'a> = (&'a str, usize, [usize; 4], usize);
    let mut per_column: Vec<Vec<Transfer>> = vec![Vec::new(); 4];
    let mut group = 0;
    for op in ops {
        match op {
            SeqOp::Memcpy {
                arg,
                offset,
                sizes,
                id,
                fifo,
                ..
            } => {
                let c: usize = fifo.rsplit('_').next().unwrap().parse().unwrap();
                if *id == 0 {
                    per_column[c].clear();
                }
                per_column[c].push((arg, *offset, *sizes, *id));
            }
            SeqOp::Wait { .. } => {
                for (c, col) in per_column.iter().enumerate() {
                    let ids: Vec<usize> = col.iter().map(|x| x.3).collect();
                    let args: Vec<&str> = col.iter().map(|x| x.0).collect();
                    if group == 0 {
                        assert_eq!(ids, [0, 1, 2, 3], "column {c}");
                        assert_eq!(args, ["o", "q", "kv", "kv"], "column {c}");
                        assert_eq!(col[2].1, params_at, "column {c}");
                        assert_eq!(col[2].2, [1, 1, 1, kv_elems], "column {c}");
                    } else {
                        assert_eq!(ids, [0, 1, 2], "column {c}, group {group}");
                        assert_eq!(args, ["o", "q", "kv"], "column {c}, group {group}");
                    }
                }
                if matches!(op, SeqOp::Wait { fifo } if fifo == "O_out_3") {
                    group += 1;
                }
            }
        }
    }
    assert_eq!(group, 4, "2 heads x 2 query groups per column");
    let params_reads = ops
        .iter()
        .filter(|op| matches!(op, SeqOp::Memcpy { offset, .. } if *offset == params_at))
        .count();
    assert_eq!(params_reads, 4, "one parameter object per column per call");
    // Q and O once, K/V once per query group, the parameter object once per column (bf16).
    let expected = 2 * 16 * 512 * 2 + 2 * (448 * 2 * 512 * 2) + 4 * kv_elems * 2;
    assert_eq!(check(&s).unwrap().ddr_bytes, expected as u64);

    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
    let r = kernel_spec::render(&s, &templates).unwrap();
    let design = &r.files[0].1;
    assert!(!design.contains("rtp_write"), "{design}");
    assert!(design.contains(&format!("%kv : memref<{}xbf16>", params_at + kv_elems)));
    // Each core reads the parameter object once per call, before its heads loop.
    let call = design.find("scf.for %call").unwrap();
    let params = design[call..].find("func.call @attn_params(").unwrap();
    let heads = design[call..].find("scf.for %hh").unwrap();
    assert!(params < heads, "{design}");
    assert_eq!(design.matches("func.call @attn_params(").count(), 4);
}

#[test]
fn layernorm_checks() {
    let ln = |tiling: &str| {
        spec(
            "kernel-specs/layernorm.toml",
            &format!("[[kernel]]\nname = \"ln\"\ndevice = \"npu2\"\ndtype = \"bf16\"\nrows = 1500\ndim = 512\neps = 1e-5\n[kernel.tiling]\n{tiling}\n"),
        )
    };
    check(&ln("tile_m = 8\ncolumns = 8\nrows = 4\npad_m_to = 1536")).unwrap();
    let msg = fails(
        &ln("tile_m = 16\ncolumns = 8\nrows = 4\npad_m_to = 1536"),
        CheckKind::CoreMemory,
    );
    assert!(msg.contains("npu2 has 64 KiB; lower tile_m"), "{msg}");
    let msg = fails(
        &ln("tile_m = 8\ncolumns = 8\nrows = 4\npad_m_to = 1504"),
        CheckKind::Divisibility,
    );
    assert!(
        msg.contains(
            "188 row blocks do not spread evenly over 32 columns*rows; set pad_m_to = 1536"
        ),
        "{msg}"
    );
}

#[test]
fn lm_head_top_k_must_be_in_range() {
    let s = spec(
        "kernel-specs/lm_head.toml",
        "[[kernel]]\nname = \"head\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nrows = 5\nd_model = 512\nvocab = 51865\ntop_k = 60000\n[kernel.tiling]\ntile_m = 64\ntile_k = 64\ntile_n = 8\ncolumns = 4\nrows = 4\npad_n_to = 8\n",
    );
    assert!(fails(&s, CheckKind::Shape).contains("top_k = 60000 must be in 1..=51865"));
}

#[test]
fn toml_syntax_errors_report_file_line_and_column() {
    let text = "[[kernel]]\nname = \"a\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nm = 64\nk = = 64\n";
    let e = parse_file(Path::new("kernel-specs/matmul.toml"), text).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SpecError::Toml { line: 6, .. }), "{msg}");
    assert!(msg.starts_with("kernel-specs/matmul.toml:6:"), "{msg}");
}

#[test]
fn unknown_keys_are_errors_naming_the_entry() {
    let text = format!(
        "[[kernel]]\nname = \"first\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nm = 64\nk = 64\nn = 64\n[kernel.tiling]\n{GOOD}\n\n[[kernel]]\nname = \"second\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nm = 64\nk = 64\nn = 64\ngelo = true\n[kernel.tiling]\n{GOOD}\n"
    );
    let e = parse_file(Path::new("kernel-specs/matmul.toml"), &text).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("kernel-specs/matmul.toml:22:1: "), "{msg}");
    assert!(msg.contains("entry \"second\""), "{msg}");
    assert!(msg.contains("unknown field `gelo`"), "{msg}");
    // Unknown tiling keys too.
    let text = format!("[[kernel]]\nname = \"t\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nm = 64\nk = 64\nn = 64\n[kernel.tiling]\n{GOOD}\ntile_q = 3\n");
    let msg = parse_file(Path::new("kernel-specs/matmul.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("unknown field `tile_q`"), "{msg}");
}

#[test]
fn bad_values_and_names() {
    let text = format!("[[kernel]]\nname = \"t\"\ndevice = \"npu3\"\ndtype = \"bf16\"\nm = 64\nk = 64\nn = 64\n[kernel.tiling]\n{GOOD}\n");
    let msg = parse_file(Path::new("kernel-specs/matmul.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("kernel-specs/matmul.toml:3:") && msg.contains("npu3"),
        "{msg}"
    );
    let text = format!("[[kernel]]\nname = \"Enc-FC1\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nm = 64\nk = 64\nn = 64\n[kernel.tiling]\n{GOOD}\n");
    let msg = parse_file(Path::new("kernel-specs/matmul.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("entry \"Enc-FC1\": names must match"), "{msg}");
    let msg = parse_file(Path::new("kernel-specs/conv.toml"), "")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("\"conv\" is not a kernel family"), "{msg}");
}

#[test]
fn load_dir_orders_entries_and_rejects_duplicates() {
    let dir = std::env::temp_dir().join(format!("kernel-spec-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let entry = |name: &str| {
        format!("[[kernel]]\nname = \"{name}\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nm = 64\nk = 64\nn = 64\n[kernel.tiling]\n{GOOD}\n")
    };
    std::fs::write(
        dir.join("matmul.toml"),
        format!("{}\n{}", entry("b"), entry("a")),
    )
    .unwrap();
    std::fs::write(
        dir.join("layernorm.toml"),
        "[[kernel]]\nname = \"ln\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nrows = 8\ndim = 512\neps = 1e-5\ntiling = { tile_m = 8, columns = 1, rows = 1 }\n",
    )
    .unwrap();
    let specs = kernel_spec::load_dir(&dir).unwrap();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["ln", "b", "a"]);
    std::fs::write(
        dir.join("matmul.toml"),
        format!("{}\n{}", entry("a"), entry("a")),
    )
    .unwrap();
    let msg = kernel_spec::load_dir(&dir).unwrap_err().to_string();
    assert!(msg.contains("entry \"a\" is already defined"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn host_transfers_must_fit_the_shim_descriptors() {
    // One 4096-wide bf16 row is 2048 words: more than the shim's innermost dimension holds.
    let s = spec(
        "kernel-specs/layernorm.toml",
        "[[kernel]]\nname = \"ln\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nrows = 8\ndim = 4096\neps = 1e-5\n[kernel.tiling]\ntile_m = 1\ncolumns = 1\nrows = 1\ndepth = 1\n",
    );
    let msg = fails(&s, CheckKind::DmaPattern);
    assert!(
        msg.contains("has an innermost size of 2048 words, the shim allows 1023"),
        "{msg}"
    );
}
