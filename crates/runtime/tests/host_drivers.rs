//! The family drivers (pack, run, unpack) against a stand-in device that decodes the host
//! buffers by the design headers' description, computes in f64 with the kernels' roundings and
//! writes the output the way the design does. Its results must match the CPU backend in
//! `Numerics::Npu` (bf16 outputs up to a rounding flip of the last bit), so these tests catch a
//! driver that packs the wrong argument, forgets one, or unpacks the wrong buffer — before any
//! emulator or NPU runs. The int8 output-scale calibration runs here too.

mod common;
mod support;

use common::{attention_f64, bf16, bf16_ulp, gelu_f64, layernorm_f64, values};
use npu_runtime::host::{self, BufferSet, HostArg, RunStats, VecInvocation};
use npu_runtime::kernel_spec::KernelSpec;
use npu_runtime::{
    AttentionParams, BackendKind, Epilogue, KernelEntry, Linear, Numerics, Runtime, RuntimeConfig,
    RuntimeError,
};
use proptest::prelude::*;
use support::*;

fn cpu(spec: &KernelSpec) -> Runtime {
    let cfg = RuntimeConfig {
        backend: BackendKind::Cpu,
        numerics: Numerics::Npu,
        threads: 2,
        ..RuntimeConfig::default()
    };
    Runtime::with_kernels(cfg, vec![KernelEntry::from_spec(spec)]).unwrap()
}

fn idx(args: &[HostArg], name: &str) -> usize {
    args.iter().position(|a| a.name == name).expect(name)
}

fn put_bf16(b: &mut [u8], i: usize, v: f32) {
    b[2 * i..2 * i + 2].copy_from_slice(&((bf16(v).to_bits() >> 16) as u16).to_le_bytes());
}

/// Row-major `[rows, cols]` of a bf16 buffer with `ld` elements per row.
fn rows_of(b: &[u8], rows: usize, cols: usize, ld: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| bf16_at(b, (i / cols) * ld + i % cols))
        .collect()
}

/// W (`[n, k]`) back from Wᵀ in a B buffer with `planes` planes per k-block of `tk` rows.
fn weights_of(b: &[u8], (n, k): (usize, usize), np: usize, tk: usize, planes: usize) -> Vec<f32> {
    let mut w = vec![0.0; n * k];
    for i in 0..k {
        for c in 0..n {
            let row = (i / tk) * planes * tk + i % tk;
            w[c * k + i] = (0..planes)
                .map(|p| bf16_at(b, (row + p * tk) * np + c))
                .sum();
        }
    }
    w
}

/// Word 0 of each channel's bf16 parameter tile (rows 0/1 = low/high half).
fn bias_of(b: &[u8], at: usize, n: usize, (tk, tn): (usize, usize)) -> Vec<f32> {
    (0..n)
        .map(|c| {
            let t = at + (c / tn) * tk * tn + c % tn;
            f32::from_bits(u16_at(b, t) | (u16_at(b, t + tn) << 16))
        })
        .collect()
}

/// Word `w` of channel `c` of an int8 parameter tile (rows 4w..4w+3).
fn int8_word(b: &[u8], at: usize, c: usize, w: usize, (tk, tn): (usize, usize)) -> f32 {
    let t = at + (c / tn) * tk * tn + c % tn;
    let byte = |i: usize| b[t + (4 * w + i) * tn] as u32;
    f32::from_bits(byte(0) | byte(1) << 8 | byte(2) << 16 | byte(3) << 24)
}

/// y[r, c] = Σ a[r, i] · w[c, i] in f64.
fn product(a: &[f32], w: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f64> {
    common::matmul_f64(a, m, w, k, n)
}

/// bf16 outputs: each within one bf16 step (the f64 here and the CPU's f32 sums and GELU
/// polynomial round a few values differently) and at most 2 % of them beyond 1e-5 of the RMS
/// (GELU's far negative tail differs by ~1e-7 between the two GELUs, many bf16 steps there).
fn close_bf16(what: &str, got: &[f32], want: &[f32]) {
    let rms = (want.iter().map(|v| v * v).sum::<f32>() / want.len() as f32).sqrt();
    let atol = 1e-5 * rms;
    let flips = got
        .iter()
        .zip(want)
        .filter(|(g, w)| (*g - *w).abs() > atol)
        .count();
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= bf16_ulp(*w) * 1.01 + atol,
            "{what}[{i}]: device {g}, cpu {w}"
        );
    }
    assert!(
        flips * 50 <= got.len() + 50,
        "{what}: {flips} of {} elements differ",
        got.len()
    );
}

/// The stand-in for a bf16 (optionally split) matmul design of `M×K×N` padded shape.
fn bf16_matmul_device(
    args: &[HostArg],
    (mp, kp, np, tk, tn, planes): (usize, usize, usize, usize, usize, usize),
    gelu: bool,
) -> impl FnMut(&mut [&mut [u8]]) -> Result<RunStats, RuntimeError> + '_ {
    move |bufs| {
        let (x, w, y) = (idx(args, "x"), idx(args, "w"), idx(args, "y"));
        let a = rows_of(bufs[x], mp, kp, kp);
        let wt = weights_of(bufs[w], (np, kp), np, tk, planes);
        let b = bias_of(bufs[w], planes * kp * np, np, (tk, tn));
        let r = args
            .iter()
            .position(|a| a.name == "r")
            .map(|i| rows_of(bufs[i], mp, np, np));
        let acc = product(&a, &wt, (mp, kp, np));
        for i in 0..mp * np {
            let mut v = acc[i] as f32 + b[i % np];
            if gelu {
                v = gelu_f64(v as f64) as f32;
            }
            if let Some(r) = &r {
                v += r[i];
            }
            put_bf16(bufs[y], i, v);
        }
        Ok(RunStats {
            runs: 1,
            ..RunStats::default()
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn matmul_bf16_through_a_device(rows in 1usize..=40, seed: u64, split: bool, bias: bool, npu2: bool) {
        let s = spec(if !split { "t_mm" } else if npu2 { "t_mm_split_npu2" } else { "t_mm_split" });
        let lay = host::MatmulLayout::of(&s).unwrap();
        let (k, n, geo, gelu) = if split {
            (128, 64, (32, 128, 64, 64, 32, 2), true)
        } else {
            (200, 90, (48, 224, 96, 32, 32, 1), false)
        };
        let rows = rows.min(geo.0);
        let rt = cpu(&s);
        let lin = rt.linear(values(seed, n * k), bias.then(|| values(seed ^ 1, n)), k, n);
        let x = values(seed ^ 2, rows * k);
        let res = values(seed ^ 3, rows * n);
        let epi = Epilogue { gelu, residual: (!split).then_some(&res[..]) };
        let mut want = vec![0.0; rows * n];
        rt.matmul("t", &x, rows, &lin, epi, &mut want).unwrap();

        let mut set = BufferSet::new(lay.args());
        let mut inv = VecInvocation::new(&mut set, bf16_matmul_device(lay.args(), geo, gelu));
        let mut got = vec![0.0; rows * n];
        let st = host::matmul::run(&mut inv, &lay, &x, rows, &lin, epi, &mut got).unwrap();
        prop_assert_eq!(st.runs, 1);
        close_bf16("y", &got, &want);
    }

    #[test]
    fn matmul_int8_through_a_device(rows in 1usize..=30, seed: u64, requantize: bool, scale in 0.01f32..100.0) {
        let s = spec(if requantize { "t_mm_q8" } else { "t_mm_q8_bf" });
        let lay = host::MatmulLayout::of(&s).unwrap();
        let (k, n, mp, tk, tn) = (256, 64, 32, 64, 32);
        let rt = cpu(&s);
        let w: Vec<f32> = values(seed, n * k).iter().map(|v| v * scale).collect();
        let lin = rt.linear(w, Some(values(seed ^ 1, n)), k, n);
        let x = values(seed ^ 2, rows * k);
        let gelu = !requantize;
        let epi = Epilogue { gelu, residual: None };
        let mut want = vec![0.0; rows * n];
        rt.matmul("t", &x, rows, &lin, epi, &mut want).unwrap();

        let args = lay.args().to_vec();
        let device = |bufs: &mut [&mut [u8]]| -> Result<RunStats, RuntimeError> {
            let (xi, wi, yi) = (idx(&args, "x"), idx(&args, "w"), idx(&args, "y"));
            let at = k * n;
            for r in 0..mp {
                for c in 0..n {
                    let acc: i32 = (0..k)
                        .map(|i| bufs[xi][r * k + i] as i8 as i32 * bufs[wi][i * n + c] as i8 as i32)
                        .sum();
                    let mut v = acc as f32 * int8_word(bufs[wi], at, c, 1, (tk, tn)) + int8_word(bufs[wi], at, c, 0, (tk, tn));
                    if gelu {
                        v = gelu_f64(v as f64) as f32;
                    }
                    if requantize {
                        // round(v / s_out), saturated, as the epilogue does.
                        let inv = int8_word(bufs[wi], at, 0, 2, (tk, tn));
                        bufs[yi][r * n + c] = (v * inv).round_ties_even().clamp(-128.0, 127.0) as i8 as u8;
                    } else {
                        put_bf16(bufs[yi], r * n + c, v);
                    }
                }
            }
            Ok(RunStats { runs: 1, ..RunStats::default() })
        };
        let mut set = BufferSet::new(lay.args());
        let mut inv = VecInvocation::new(&mut set, device);
        let mut got = vec![0.0; rows * n];
        let st = host::matmul::run(&mut inv, &lay, &x, rows, &lin, epi, &mut got).unwrap();
        if requantize {
            // Calibration runs, then the run with the output scale.
            prop_assert!((2..=5).contains(&st.runs), "{} runs", st.runs);
            let amax = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            // The largest output is ±127 steps on both sides: the same output scale.
            prop_assert_eq!(amax(&got), amax(&want));
            let step = amax(&want) / 127.0;
            let off = got.iter().zip(&want).filter(|(g, w)| g != w).count();
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g - w).abs() <= step * 1.001, "device {} cpu {} step {}", g, w, step);
            }
            prop_assert!(off * 100 <= got.len() + 100, "{} flips", off);
        } else {
            prop_assert_eq!(st.runs, 1);
            close_bf16("y", &got, &want);
        }
    }
}

#[test]
fn requantised_zero_output_needs_no_calibration() {
    let s = spec("t_mm_q8");
    let lay = host::MatmulLayout::of(&s).unwrap();
    let rt = cpu(&s);
    let lin = rt.linear(values(1, 64 * 256), None, 256, 64);
    let x = vec![0.0; 3 * 256];
    let mut set = BufferSet::new(lay.args());
    let mut inv = VecInvocation::new(&mut set, |bufs: &mut [&mut [u8]]| {
        bufs[2].fill(0);
        Ok(RunStats {
            runs: 1,
            ..RunStats::default()
        })
    });
    let mut got = vec![1.0; 3 * 64];
    let st = host::matmul::run(&mut inv, &lay, &x, 3, &lin, Epilogue::default(), &mut got).unwrap();
    assert_eq!(
        st.runs, 1,
        "all-zero inputs: the scale is known without calibration"
    );
    assert!(got.iter().all(|&v| v == 0.0));
}

#[test]
fn ffn_through_a_device() {
    for (name, planes) in [("t_ffn", 1), ("t_ffn_split", 2)] {
        let s = spec(name);
        let lay = host::FfnLayout::of(&s).unwrap();
        let (rows, d, dff, mp, tk, tn) = (20, 128, 512, 24, 64, 64);
        let rt = cpu(&s);
        let fc1 = rt.linear(values(1, dff * d), Some(values(2, dff)), d, dff);
        let fc2: Linear = rt.linear(values(3, d * dff), Some(values(4, d)), dff, d);
        let x = values(5, rows * d);
        // Whisper's MLP: the residual is the stream before the LayerNorm, not the FFN's input.
        let res = values(6, rows * d);
        let mut want = vec![0.0; rows * d];
        rt.ffn("t", &x, rows, &fc1, &fc2, &res, &mut want).unwrap();

        let args = lay.args().to_vec();
        let device = |bufs: &mut [&mut [u8]]| -> Result<RunStats, RuntimeError> {
            let [xi, w1, hi, w2, yi] = ["x", "w1", "h", "w2", "y"].map(|n| idx(&args, n));
            let xs = rows_of(bufs[xi], mp, d, d);
            let b1 = bias_of(bufs[w1], planes * d * dff, dff, (tk, tn));
            let h: Vec<f32> = product(
                &xs,
                &weights_of(bufs[w1], (dff, d), dff, tk, planes),
                (mp, d, dff),
            )
            .iter()
            .enumerate()
            .map(|(i, v)| bf16(gelu_f64((*v as f32 + b1[i % dff]) as f64) as f32))
            .collect();
            for (i, v) in h.iter().enumerate() {
                put_bf16(bufs[hi], i, *v);
            }
            let b2 = bias_of(bufs[w2], planes * dff * d, d, (tk, tn));
            // R [M, d] behind H [M, d_ff] in the scratch buffer.
            let r: Vec<f32> = (0..mp * d)
                .map(|i| bf16_at(bufs[hi], mp * dff + i))
                .collect();
            let y = product(
                &h,
                &weights_of(bufs[w2], (d, dff), d, tk, planes),
                (mp, dff, d),
            );
            for i in 0..mp * d {
                put_bf16(bufs[yi], i, y[i] as f32 + b2[i % d] + r[i]);
            }
            Ok(RunStats {
                runs: 1,
                ..RunStats::default()
            })
        };
        let mut set = BufferSet::new(lay.args());
        let mut inv = VecInvocation::new(&mut set, device);
        let mut got = vec![0.0; rows * d];
        host::ffn::run(&mut inv, &lay, &x, rows, &fc1, &fc2, &res, &mut got).unwrap();
        close_bf16(name, &got, &want);
    }
}

#[test]
fn attention_through_a_device() {
    // (entry, q_len, kv_len, causal offset), padded q rows, padded keys, tile_n, (S, T).
    let cases = [
        ("t_attn_enc", 36, 36, None, 40, 40, 8, (8, 4)),
        ("t_attn_causal", 5, 13, Some(8), 8, 24, 8, (8, 4)),
        ("t_attn_causal", 1, 24, Some(23), 8, 24, 8, (8, 4)),
        ("t_attn_cross", 3, 40, None, 8, 48, 16, (8, 4)),
        ("t_attn_cross_npu2", 2, 40, None, 8, 48, 16, (8, 8)),
    ];
    let (heads, hd) = (2, 64);
    let d = heads * hd;
    for (name, q_len, kv_len, offset, mp, kvp, tn, (s, t)) in cases {
        let sp = spec(name);
        let lay = host::AttentionLayout::of(&sp).unwrap();
        let rt = cpu(&sp);
        let p = AttentionParams {
            heads,
            head_dim: hd,
            q_len,
            kv_len,
            causal_offset: offset,
        };
        let (q, k, v) = (
            values(1, q_len * d),
            values(2, kv_len * d),
            values(3, kv_len * d),
        );
        let mut want = vec![0.0; q_len * d];
        rt.attention("t", &q, &k, &v, p, &mut want).unwrap();

        let device = |bufs: &mut [&mut [u8]]| -> Result<RunStats, RuntimeError> {
            let qs = rows_of(bufs[0], mp, d, d);
            let kv_elems = 2 * tn * hd;
            let blocks = kvp / tn;
            let blk = |r: usize, c: usize, cols: usize| {
                ((r / s) * (cols / t) + c / t) * (s * t) + (r % s) * t + c % t
            };
            let (mut ks, mut vs) = (vec![0.0; kvp * d], vec![0.0; kvp * d]);
            for h in 0..heads {
                for key in 0..kvp {
                    let base = (h * blocks + key / tn) * kv_elems;
                    for dd in 0..hd {
                        ks[key * d + h * hd + dd] = bf16_at(bufs[1], base + blk(dd, key % tn, tn));
                        vs[key * d + h * hd + dd] =
                            bf16_at(bufs[1], base + tn * hd + blk(key % tn, dd, hd));
                    }
                }
            }
            let prm = heads * blocks * kv_elems;
            let word = |w: usize| {
                (u16_at(bufs[1], prm + 2 * w) | (u16_at(bufs[1], prm + 2 * w + 1) << 16)) as usize
            };
            let (valid, off) = (word(0), word(1));
            let causal = (name == "t_attn_causal").then_some(off);
            let o = attention_f64(&qs, &ks, &vs, heads, hd, mp, valid, causal, true);
            for (i, x) in o.iter().enumerate() {
                put_bf16(bufs[2], i, *x as f32);
            }
            Ok(RunStats {
                runs: 1,
                ..RunStats::default()
            })
        };
        let mut set = BufferSet::new(lay.args());
        let mut inv = VecInvocation::new(&mut set, device);
        let mut got = vec![0.0; q_len * d];
        host::attention::run(&mut inv, &lay, &q, &k, &v, p, &mut got).unwrap();
        // f64 softmax here, f32 exp on the CPU: a few bf16 steps apart at most.
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 3.0 * bf16_ulp(*w) + 4e-3,
                "{name}[{i}]: device {g}, cpu {w}"
            );
        }
    }
}

#[test]
fn layernorm_and_lm_head_through_a_device() {
    for name in ["t_ln", "t_ln_f32"] {
        let sp = spec(name);
        let lay = host::LayerNormLayout::of(&sp).unwrap();
        let rt = cpu(&sp);
        let (rows, dim) = (17, 512);
        let bf = name == "t_ln";
        let (x, g, b) = (values(1, rows * dim), values(2, dim), values(3, dim));
        let mut want = vec![0.0; rows * dim];
        rt.layernorm("t", &x, rows, dim, &g, &b, 1e-5, &mut want)
            .unwrap();
        let device = |bufs: &mut [&mut [u8]]| -> Result<RunStats, RuntimeError> {
            let m = 24;
            let at = |b: &[u8], i| if bf { bf16_at(b, i) } else { f32_at(b, i) };
            let xs: Vec<f32> = (0..m * dim).map(|i| at(bufs[0], i)).collect();
            let gs: Vec<f32> = (0..dim).map(|i| f32_at(bufs[1], i)).collect();
            let bs: Vec<f32> = (0..dim).map(|i| f32_at(bufs[1], dim + i)).collect();
            for (i, y) in layernorm_f64(&xs, m, dim, &gs, &bs, 1e-5)
                .into_iter()
                .enumerate()
            {
                if bf {
                    put_bf16(bufs[2], i, y as f32);
                } else {
                    bufs[2][4 * i..4 * i + 4].copy_from_slice(&(y as f32).to_le_bytes());
                }
            }
            Ok(RunStats {
                runs: 1,
                ..RunStats::default()
            })
        };
        let mut set = BufferSet::new(lay.args());
        let mut inv = VecInvocation::new(&mut set, device);
        let mut got = vec![0.0; rows * dim];
        host::layernorm::run(&mut inv, &lay, &x, (rows, dim), &g, &b, 1e-5, &mut got).unwrap();
        for (i, (gv, w)) in got.iter().zip(&want).enumerate() {
            let tol = if bf {
                bf16_ulp(*w) * 1.01
            } else {
                1e-5 * w.abs().max(1.0)
            };
            assert!((gv - w).abs() <= tol, "{name}[{i}]: device {gv}, cpu {w}");
        }
        let e = host::layernorm::run(&mut inv, &lay, &x, (rows, dim), &g, &b, 1e-6, &mut got)
            .unwrap_err();
        assert!(e.to_string().contains("eps"), "{e}");
    }

    for (name, planes, np) in [
        ("t_lm", 1, 8),
        ("t_lm_top", 1, 8),
        ("t_lm_split", 2, 8),
        ("t_lm_split_npu2", 2, 16),
    ] {
        let sp = spec(name);
        let lay = host::LmHeadLayout::of(&sp).unwrap();
        let rt = cpu(&sp);
        let (rows, d, vocab, tk) = (3, 128, 1000, 64);
        let emb = rt.linear(values(1, vocab * d), None, d, vocab);
        let x = values(2, rows * d);
        let subset: Vec<u32> = (0..77).map(|i| (i * 37 + 5) % 1000).collect();
        let sub = (name == "t_lm_top").then_some(&subset[..]);
        let count = sub.map_or(vocab, <[u32]>::len);
        let mut want = vec![0.0; rows * count];
        rt.lm_head("t", &x, rows, &emb, sub, &mut want).unwrap();
        let device = |bufs: &mut [&mut [u8]]| -> Result<RunStats, RuntimeError> {
            let mp = bufs[0].len() / 2 / (planes * d);
            let mut e = vec![0.0; mp * d];
            for v in 0..mp {
                for i in 0..d {
                    let col = (i / tk) * planes * tk + i % tk;
                    e[v * d + i] = (0..planes)
                        .map(|p| bf16_at(bufs[0], v * planes * d + col + p * tk))
                        .sum();
                }
            }
            let xt: Vec<f32> = (0..np * d)
                .map(|i| bf16_at(bufs[1], (i % d) * np + i / d))
                .collect();
            let l = product(&e, &xt, (mp, d, np));
            for (i, v) in l.iter().enumerate() {
                bufs[2][4 * i..4 * i + 4].copy_from_slice(&(*v as f32).to_le_bytes());
            }
            Ok(RunStats {
                runs: 1,
                ..RunStats::default()
            })
        };
        let mut set = BufferSet::new(lay.args());
        let mut inv = VecInvocation::new(&mut set, device);
        let mut got = vec![0.0; rows * count];
        host::lm_head::run(&mut inv, &lay, &x, rows, &emb, sub, &mut got).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-4, "{name}[{i}]: device {g}, cpu {w}");
        }
    }
}
