//! Calls that break a function's contract are errors naming the function and the problem,
//! never panics.

mod common;

use aie_kernels::{library_for, Arg};
use common::{call, spec, Buf, A};

fn matmul_lib() -> aie_kernels::CoreLibrary {
    library_for(&spec(
        "matmul",
        "[[kernel]]\nname = \"t\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nm = 8\nk = 16\nn = 16\nbias = true\n\
         tiling = { tile_m = 8, tile_k = 16, tile_n = 16, columns = 1, rows = 1 }\n",
    ))
    .unwrap()
}

fn attention_lib(kind: &str) -> aie_kernels::CoreLibrary {
    library_for(&spec(
        "attention",
        &format!(
            "[[kernel]]\nname = \"t\"\ndevice = \"npu2\"\ndtype = \"bf16\"\nkind = \"{kind}\"\nheads = 1\nhead_dim = 32\n\
             q_len = 8\nkv_len = 60\ntiling = {{ tile_m = 8, tile_n = 32, columns = 1, rows = 1, pad_n_to = 64 }}\n"
        ),
    ))
    .unwrap()
}

fn err(r: Result<(), aie_kernels::CallError>) -> String {
    r.expect_err("the call breaks the contract").0
}

#[test]
fn wrong_buffer_length() {
    let lib = matmul_lib();
    // A is 8x16 bf16 = 256 bytes; pass 200.
    let (mut a, mut b, mut acc) = (Buf::zeroed(200), Buf::zeroed(512), Buf::zeroed(4 * 8 * 16));
    let e = err(call(
        &lib,
        "matmul_tile",
        vec![A::M(&mut a), A::M(&mut b), A::M(&mut acc)],
    ));
    assert!(
        e.contains("matmul_tile")
            && e.contains("argument 0")
            && e.contains("200 bytes")
            && e.contains("256 bytes"),
        "{e}"
    );
}

#[test]
fn wrong_argument_count_and_kind() {
    let lib = matmul_lib();
    let e = err(call(&lib, "zero_acc", vec![]));
    assert!(e.contains("zero_acc") && e.contains("0 arguments"), "{e}");
    let e = err(call(&lib, "zero_acc", vec![A::I(3)]));
    assert!(e.contains("must be a buffer"), "{e}");
    let mut acc = Buf::zeroed(512);
    let mut y = Buf::zeroed(256);
    let e = err(call(
        &lib,
        "epilogue_0",
        vec![A::M(&mut acc), A::I(0), A::M(&mut y)],
    ));
    assert!(e.contains("epilogue_0") && e.contains("argument 1"), "{e}");
}

#[test]
fn misaligned_buffer() {
    let lib = matmul_lib();
    let (mut a, mut b, mut raw) = (Buf::zeroed(256), Buf::zeroed(512), Buf::zeroed(512 + 4));
    let f = lib.get("matmul_tile").unwrap();
    let mut args = [
        Arg::Mem(a.bytes()),
        Arg::Mem(b.bytes()),
        Arg::Mem(&mut raw.bytes()[2..514]),
    ];
    let e = f.call(&mut args).expect_err("misaligned").0;
    assert!(e.contains("aligned"), "{e}");
}

fn params_object(valid: i32, offset: i32) -> Buf {
    let mut obj = vec![0u16; 2 * 32 * 32];
    obj[0] = valid as u32 as u16;
    obj[1] = (valid as u32 >> 16) as u16;
    obj[2] = offset as u32 as u16;
    obj[3] = (offset as u32 >> 16) as u16;
    Buf::from_u16(&obj)
}

#[test]
fn attention_parameters_out_of_range() {
    let lib = attention_lib("causal_self");
    let mut rtp = Buf::zeroed(16);
    // 64 is the padded kv length: fine; 65 is not.
    call(
        &lib,
        "attn_params",
        vec![A::M(&mut params_object(64, 3)), A::M(&mut rtp)],
    )
    .unwrap();
    assert_eq!(rtp.i32s(), vec![64, 3, 0, 0]);
    let e = err(call(
        &lib,
        "attn_params",
        vec![A::M(&mut params_object(65, 0)), A::M(&mut rtp)],
    ));
    assert!(
        e.contains("attn_params") && e.contains("valid keys = 65") && e.contains("0..=64"),
        "{e}"
    );
    let e = err(call(
        &lib,
        "attn_params",
        vec![A::M(&mut params_object(-1, 0)), A::M(&mut rtp)],
    ));
    assert!(e.contains("valid keys = -1"), "{e}");
    let e = err(call(
        &lib,
        "attn_params",
        vec![A::M(&mut params_object(10, -2)), A::M(&mut rtp)],
    ));
    assert!(e.contains("causal offset = -2"), "{e}");
    // Non-causal kernels ignore the offset.
    let lib = attention_lib("cross");
    call(
        &lib,
        "attn_params",
        vec![A::M(&mut params_object(60, -2)), A::M(&mut rtp)],
    )
    .unwrap();
}

#[test]
fn attention_step_checks_rtp_and_block_origins() {
    let lib = attention_lib("encoder");
    let step = |rtp: &[i32], q0: i32, k0: i32| {
        let mut q = Buf::zeroed(2 * 8 * 32);
        let mut kv = Buf::zeroed(2 * 2 * 32 * 32);
        let mut oacc = Buf::zeroed(4 * 8 * 32);
        let mut stats = Buf::zeroed(4 * 16);
        let mut s = Buf::zeroed(4 * 8 * 32);
        let mut p = Buf::zeroed(2 * 8 * 32);
        let mut rtp = Buf::from_i32(rtp);
        call(
            &lib,
            "attn_step",
            vec![
                A::M(&mut q),
                A::M(&mut kv),
                A::M(&mut oacc),
                A::M(&mut stats),
                A::M(&mut s),
                A::M(&mut p),
                A::M(&mut rtp),
                A::I(q0),
                A::I(k0),
            ],
        )
    };
    step(&[60, 0, 0, 0], 0, 32).unwrap();
    let e = err(step(&[100, 0, 0, 0], 0, 0));
    assert!(
        e.contains("attn_step") && e.contains("valid keys = 100"),
        "{e}"
    );
    let e = err(step(&[60, 0, 0, 0], 0, 64));
    assert!(e.contains("k0 = 64"), "{e}");
    let e = err(step(&[60, 0, 0, 0], 0, 16));
    assert!(e.contains("k0 = 16"), "{e}");
    let e = err(step(&[60, 0, 0, 0], 8, 0));
    assert!(e.contains("q0 = 8"), "{e}");
}

#[test]
fn entry_that_does_not_plan() {
    // tile_m = 6 is not a multiple of 2 x mmul M = 8.
    let s = spec(
        "matmul",
        "[[kernel]]\nname = \"t\"\ndevice = \"npu1\"\ndtype = \"bf16\"\nm = 12\nk = 16\nn = 16\n\
         tiling = { tile_m = 6, tile_k = 16, tile_n = 16, columns = 1, rows = 1 }\n",
    );
    let e = library_for(&s)
        .err()
        .expect("no library for an entry that does not plan")
        .0;
    assert!(e.contains("tile_m = 6") && e.contains("matmul.toml"), "{e}");
}
