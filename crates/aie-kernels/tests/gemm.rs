//! matmul_tile + epilogue against a plain row-major reference that sums in the C++'s order:
//! bit-exact for bf16 (bias, GELU, residual, split planes in B or A), int8 (int8 or bf16 out)
//! and f32 out, on both devices' aie::mmul shapes.

mod common;

use aie_kernels::numerics::{self, bf16_to_f32, f32_to_bf16, Arch};
use aie_kernels::{library_for, ArgType, Elem};
use common::{bits, call, pack, spec, unpack, Buf, Rng, A};
use kernel_spec::{Dtype, KernelSpec};

/// Operand planes of one k-step in the order the design calls matmul_tile: (A plane, B plane).
fn plane_calls(planes_a: usize, planes_b: usize) -> Vec<(usize, usize)> {
    if planes_a > 1 {
        (0..planes_a).map(|p| (p, 0)).collect()
    } else {
        (0..planes_b).map(|p| (0, p)).collect()
    }
}

/// `n` values as `planes` bf16 planes: one plane of bf16 values, or hi = bf16(w), lo = bf16(w - hi).
fn planes(rng: &mut Rng, n: usize, planes: usize) -> Vec<Vec<f32>> {
    if planes == 1 {
        return vec![(0..n).map(|_| rng.bf16(-2.0, 2.0)).collect()];
    }
    let w: Vec<f32> = (0..n).map(|_| rng.uniform(-2.0, 2.0)).collect();
    let hi: Vec<f32> = w.iter().map(|&x| bf16_to_f32(f32_to_bf16(x))).collect();
    let lo = w
        .iter()
        .zip(&hi)
        .map(|(&x, &h)| bf16_to_f32(f32_to_bf16(x - h)))
        .collect();
    vec![hi, lo]
}

/// Columns `ks*tk..(ks+1)*tk` of a row-major `rows x cols` matrix.
fn cols(m: &[f32], rows: usize, cols: usize, c0: usize, w: usize) -> Vec<f32> {
    (0..rows)
        .flat_map(|r| m[r * cols + c0..r * cols + c0 + w].to_vec())
        .collect()
}

fn out_elem(sig: &[ArgType]) -> Elem {
    match sig.last() {
        Some(ArgType::Mem(m)) => m.elem,
        other => panic!("epilogue output is not a buffer: {other:?}"),
    }
}

/// Runs pass `pi` of `spec` for one output tile through zero_acc, matmul_tile (every k-step and
/// plane) and epilogue_<pi>, and checks accumulator and output bit for bit.
fn check_pass(spec: &KernelSpec, pi: usize, seed: u64) {
    let plan = kernel_spec::plan(spec).expect("test spec plans");
    let p = &plan.passes[pi];
    let lim = spec.device.limits();
    let arch = Arch::from_name(lim.arch).unwrap();
    let (r, s, t) = lim.mmul(spec.dtype);
    let (tm, tk, tn) = (spec.tiling.tile_m, spec.tiling.tile_k, spec.tiling.tile_n);
    let kb = p.k_blocks;
    let k = kb * tk;
    let int8 = spec.dtype == Dtype::Int8;
    let lib = library_for(spec).expect("library");
    let epi = format!("epilogue_{pi}");
    let out = out_elem(lib.get(&epi).expect("epilogue").signature());
    let mut rng = Rng::new(seed);
    let what = format!("{} pass {pi}", spec.name);

    // Operands (row-major, as f32 or i8 values) and the accumulator of the reference.
    let (acc_ref_f, acc_ref_i, mut acc);
    if int8 {
        let a: Vec<i8> = (0..tm * k).map(|_| rng.i8()).collect();
        let b: Vec<i8> = (0..k * tn).map(|_| rng.i8()).collect();
        let mut accv = vec![0i32; tm * tn];
        for i in 0..tm {
            for j in 0..tn {
                let mut x = 0i32;
                for kk in 0..k {
                    x += i32::from(a[i * k + kk]) * i32::from(b[kk * tn + j]);
                }
                accv[i * tn + j] = x;
            }
        }
        acc = Buf::zeroed(4 * tm * tn);
        call(&lib, "zero_acc", vec![A::M(&mut acc)]).unwrap();
        let af: Vec<f32> = a.iter().map(|&x| x as f32).collect();
        for ks in 0..kb {
            let at: Vec<i8> = cols(&af, tm, k, ks * tk, tk)
                .iter()
                .map(|&x| x as i8)
                .collect();
            let bt: Vec<i8> = b[ks * tk * tn..(ks + 1) * tk * tn].to_vec();
            let mut ab = Buf::from_i8(&pack(&at, tm, tk, r, s));
            let mut bb = Buf::from_i8(&pack(&bt, tk, tn, s, t));
            call(
                &lib,
                "matmul_tile",
                vec![A::M(&mut ab), A::M(&mut bb), A::M(&mut acc)],
            )
            .unwrap();
        }
        assert_eq!(
            unpack(&acc.i32s(), tm, tn, r, t),
            accv,
            "{what}: int8 accumulator"
        );
        acc_ref_i = accv;
        acc_ref_f = Vec::new();
    } else {
        let ap = planes(&mut rng, tm * k, p.planes_a);
        let bp = planes(&mut rng, k * tn, p.planes_b);
        let calls = plane_calls(p.planes_a, p.planes_b);
        let mut accv = vec![0f32; tm * tn];
        for i in 0..tm {
            for j in 0..tn {
                let mut x = 0f32;
                for ks in 0..kb {
                    for &(pa, pb) in &calls {
                        for kk in ks * tk..(ks + 1) * tk {
                            x += ap[pa][i * k + kk] * bp[pb][kk * tn + j];
                        }
                    }
                }
                accv[i * tn + j] = x;
            }
        }
        acc = Buf::zeroed(4 * tm * tn);
        call(&lib, "zero_acc", vec![A::M(&mut acc)]).unwrap();
        for ks in 0..kb {
            for &(pa, pb) in &calls {
                let at = cols(&ap[pa], tm, k, ks * tk, tk);
                let bt = bp[pb][ks * tk * tn..(ks + 1) * tk * tn].to_vec();
                let mut ab = Buf::from_u16(&bits(&pack(&at, tm, tk, r, s)));
                let mut bb = Buf::from_u16(&bits(&pack(&bt, tk, tn, s, t)));
                call(
                    &lib,
                    "matmul_tile",
                    vec![A::M(&mut ab), A::M(&mut bb), A::M(&mut acc)],
                )
                .unwrap();
            }
        }
        let got = unpack(&acc.f32s(), tm, tn, r, t);
        let same = got
            .iter()
            .zip(&accv)
            .all(|(g, w)| g.to_bits() == w.to_bits());
        assert!(same, "{what}: f32 accumulator differs from the k-order sum");
        acc_ref_f = accv;
        acc_ref_i = Vec::new();
    }

    // Epilogue inputs: parameter tile (B layout), residual tile (A layout).
    let bias: Vec<f32> = (0..tn).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let scale: Vec<f32> = (0..tn)
        .map(|_| rng.uniform(0.5, 1.5) * 6.0 / (127.0 * 127.0 * (k as f32).sqrt()))
        .collect();
    let inv_out = 127.0 / 4.0;
    let mut args_bufs: Vec<Buf> = Vec::new();
    if p.params {
        let words: Vec<Vec<f32>> = if int8 {
            vec![bias.clone(), scale.clone(), vec![inv_out; tn]]
        } else {
            vec![bias.clone()]
        };
        if int8 {
            let mut rm = vec![0i8; tk * tn];
            for (w, vals) in words.iter().enumerate() {
                for (n, v) in vals.iter().enumerate() {
                    for (byte, x) in v.to_bits().to_le_bytes().iter().enumerate() {
                        rm[(4 * w + byte) * tn + n] = *x as i8;
                    }
                }
            }
            args_bufs.push(Buf::from_i8(&pack(&rm, tk, tn, s, t)));
        } else {
            let mut rm = vec![0u16; tk * tn];
            for (w, vals) in words.iter().enumerate() {
                for (n, v) in vals.iter().enumerate() {
                    rm[2 * w * tn + n] = v.to_bits() as u16;
                    rm[(2 * w + 1) * tn + n] = (v.to_bits() >> 16) as u16;
                }
            }
            args_bufs.push(Buf::from_u16(&pack(&rm, tk, tn, s, t)));
        }
    }
    let res: Vec<f32> = (0..tm * tn).map(|_| rng.bf16(-3.0, 3.0)).collect();
    if p.residual {
        assert_eq!(tk, tn);
        args_bufs.push(Buf::from_u16(&bits(&pack(&res, tm, tk, r, s))));
    }
    let mut y = Buf::zeroed(tm * tn * out.bytes());
    let mut args = vec![A::M(&mut acc)];
    for b in args_bufs.iter_mut() {
        args.push(A::M(b));
    }
    args.push(A::M(&mut y));
    call(&lib, &epi, args).unwrap();

    // Reference epilogue, element by element in f32.
    let mut saturated = 0;
    for i in 0..tm {
        for j in 0..tn {
            let mut v = if int8 {
                acc_ref_i[i * tn + j] as f32 * scale[j]
            } else {
                acc_ref_f[i * tn + j]
            };
            if p.params {
                v += bias[j];
            }
            if p.gelu {
                v = numerics::gelu(arch, v);
            }
            if p.residual {
                v += res[i * tn + j];
            }
            let at = format!("{what}: y[{i}][{j}]");
            match out {
                Elem::Bf16 => assert_eq!(y.u16s()[i * tn + j], f32_to_bf16(v), "{at}"),
                Elem::F32 => assert_eq!(y.f32s()[i * tn + j].to_bits(), v.to_bits(), "{at}"),
                Elem::I8 => {
                    let q = (v * inv_out).round_ties_even().clamp(-128.0, 127.0);
                    saturated += usize::from(q.abs() == 127.0 || q == -128.0);
                    assert_eq!(y.i8s()[i * tn + j], q as i8, "{at}");
                }
                Elem::I32 => panic!("no i32 output"),
            }
        }
    }
    if out == Elem::I8 {
        assert!(
            saturated > 0,
            "{what}: the int8 case should exercise saturation"
        );
    }
}

fn matmul(
    device: &str,
    dtype: &str,
    tm: usize,
    tk: usize,
    tn: usize,
    k: usize,
    extra: &str,
) -> KernelSpec {
    spec(
        "matmul",
        &format!(
            "[[kernel]]\nname = \"t\"\ndevice = \"{device}\"\ndtype = \"{dtype}\"\nm = {tm}\nk = {k}\nn = {tn}\n{extra}\n\
             tiling = {{ tile_m = {tm}, tile_k = {tk}, tile_n = {tn}, columns = 1, rows = 1 }}\n"
        ),
    )
}

#[test]
fn bf16_matmul_npu1_bias_gelu_residual() {
    let s = matmul(
        "npu1",
        "bf16",
        8,
        16,
        16,
        48,
        "bias = true\ngelu = true\nresidual = true",
    );
    check_pass(&s, 0, 1);
}

#[test]
fn bf16_matmul_npu1_split_bias_odd_width() {
    // tn = 24: one 16-wide and one 8-wide strip in the model's product.
    let s = matmul(
        "npu1",
        "bf16",
        16,
        32,
        24,
        64,
        "bias = true\nsplit_weights = true",
    );
    check_pass(&s, 0, 2);
}

#[test]
fn bf16_matmul_npu1_plain() {
    check_pass(&matmul("npu1", "bf16", 8, 8, 8, 8, ""), 0, 3);
}

#[test]
fn bf16_matmul_npu2_split_gelu_no_bias() {
    let s = matmul(
        "npu2",
        "bf16",
        8,
        16,
        16,
        32,
        "gelu = true\nsplit_weights = true",
    );
    check_pass(&s, 0, 4);
}

#[test]
fn bf16_matmul_npu2_split_bias_residual() {
    let s = matmul(
        "npu2",
        "bf16",
        16,
        32,
        32,
        96,
        "bias = true\nresidual = true\nsplit_weights = true",
    );
    check_pass(&s, 0, 5);
}

#[test]
fn int8_matmul_npu1_requantised_gelu() {
    let s = matmul(
        "npu1",
        "int8",
        8,
        32,
        16,
        64,
        "gelu = true\nquant = { weight_scale = \"per_channel\", requantize_output = true }",
    );
    check_pass(&s, 0, 6);
}

#[test]
fn int8_matmul_npu1_bf16_out() {
    let s = matmul(
        "npu1",
        "int8",
        8,
        16,
        16,
        48,
        "bias = true\nquant = { weight_scale = \"per_tensor\", requantize_output = false }",
    );
    check_pass(&s, 0, 7);
}

#[test]
fn int8_matmul_npu2_both_outputs() {
    let q = |r: bool| {
        format!("gelu = {r}\nquant = {{ weight_scale = \"per_channel\", requantize_output = {r} }}")
    };
    check_pass(&matmul("npu2", "int8", 16, 16, 16, 32, &q(true)), 0, 8);
    check_pass(&matmul("npu2", "int8", 16, 32, 32, 64, &q(false)), 0, 9);
}

fn ffn(
    device: &str,
    rows: usize,
    d_model: usize,
    d_ff: usize,
    tile: usize,
    split: bool,
) -> KernelSpec {
    spec(
        "ffn",
        &format!(
            "[[kernel]]\nname = \"t\"\ndevice = \"{device}\"\ndtype = \"bf16\"\nrows = {rows}\nd_model = {d_model}\nd_ff = {d_ff}\n\
             split_weights = {split}\ntiling = {{ tile_m = {rows}, tile_k = {tile}, tile_n = {tile}, columns = 1, rows = 1 }}\n"
        ),
    )
}

#[test]
fn ffn_passes_both_devices() {
    for (i, s) in [
        ffn("npu1", 8, 16, 32, 16, true),
        ffn("npu1", 8, 32, 64, 32, false),
        ffn("npu2", 8, 32, 64, 32, true),
    ]
    .iter()
    .enumerate()
    {
        // Pass 0: + b1, GELU; pass 1: + b2, + residual.
        check_pass(s, 0, 10 + i as u64);
        check_pass(s, 1, 20 + i as u64);
    }
}

fn lm_head(
    device: &str,
    rows: usize,
    d_model: usize,
    vocab: usize,
    t: (usize, usize, usize),
    split: bool,
) -> KernelSpec {
    spec(
        "lm_head",
        &format!(
            "[[kernel]]\nname = \"t\"\ndevice = \"{device}\"\ndtype = \"bf16\"\nrows = {rows}\nd_model = {d_model}\nvocab = {vocab}\n\
             split_weights = {split}\ntiling = {{ tile_m = {}, tile_k = {}, tile_n = {}, columns = 1, rows = 1 }}\n",
            t.0, t.1, t.2
        ),
    )
}

#[test]
fn lm_head_f32_out_split_in_a() {
    check_pass(&lm_head("npu1", 8, 48, 16, (16, 16, 8), true), 0, 30);
    check_pass(&lm_head("npu1", 8, 32, 8, (8, 32, 8), false), 0, 31);
    check_pass(&lm_head("npu2", 16, 48, 8, (8, 16, 16), true), 0, 32);
}

#[test]
fn split_planes_keep_sixteen_bits() {
    // hi + lo planes multiply the weights with 16 significant bits: the product of a one-hot
    // row with split weights is exactly hi + lo (the float16-checkpoint contract).
    let s = matmul("npu1", "bf16", 8, 8, 8, 8, "split_weights = true");
    let lib = library_for(&s).unwrap();
    let w = 1.0f32 + 3.0 / 1024.0; // not a bf16 value; hi = 1, lo = 3/1024
    let hi = bf16_to_f32(f32_to_bf16(w));
    let lo = bf16_to_f32(f32_to_bf16(w - hi));
    let mut a = vec![0f32; 64];
    a[0] = 1.0; // row 0 picks k = 0
    let b_hi = vec![hi; 64];
    let b_lo = vec![lo; 64];
    let mut acc = Buf::zeroed(4 * 64);
    call(&lib, "zero_acc", vec![A::M(&mut acc)]).unwrap();
    for b in [&b_hi, &b_lo] {
        let mut ab = Buf::from_u16(&bits(&pack(&a, 8, 8, 4, 8)));
        let mut bb = Buf::from_u16(&bits(&pack(b, 8, 8, 8, 4)));
        call(
            &lib,
            "matmul_tile",
            vec![A::M(&mut ab), A::M(&mut bb), A::M(&mut acc)],
        )
        .unwrap();
    }
    let got = unpack(&acc.f32s(), 8, 8, 4, 4);
    assert!(got[..8].iter().all(|&x| x == w), "row 0: {:?}", &got[..8]);
    assert!(got[8..].iter().all(|&x| x == 0.0));
}
