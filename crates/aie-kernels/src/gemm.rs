//! Models of `templates/common/gemm_kernels.cc.jinja` (matmul, ffn, lm_head): `zero_acc`,
//! `matmul_tile` and one `epilogue_<i>` per pass of `kernel_spec::plan`.
//!
//! Layouts (see `mmul.rs`): A tile `tm x tk` in R x S blocks, B tile `tk x tn` in S x T blocks,
//! the accumulator `tm x tn` in R x T blocks, C row-major. Parameter tiles are B tiles: bf16 —
//! 32-bit word w of channel n in rows 2w (low half) and 2w+1 (high half); int8 — its bytes in
//! rows 4w..4w+3, little-endian. Words: 0 = bias (f32); int8 also 1 = scale sx·sw[n], and
//! (int8 output) 2 = 1/s_out, read at channel 0. The residual tile is an A tile (tk == tn).
//!
//! Rounding: bf16 products are exact in f32 and added to the f32 accumulator one at a time in
//! increasing k (split weights: the design calls `matmul_tile` once per plane); int8 sums are
//! exact in i32. The epilogue runs in f32 in the C++'s order (dequantise, add the bias, GELU,
//! add the residual) and rounds once at the output: bf16 nearest-even, f32 unrounded, int8 by
//! `numerics::requantize_i8`.

use kernel_spec::{Dtype, KernelSpec, Op, Plan};

use crate::cost::{self, CALL_OVERHEAD};
use crate::mmul::{mm_acc, Blocked};
use crate::numerics::{self, bf16_to_f32, f32_to_bf16, Arch};
use crate::view;
use crate::{Arg, ArgType, CallError, CoreFunction, CoreLibrary, Elem, MemType};

/// The tile shapes and types shared by the functions of one entry.
#[derive(Debug, Clone, Copy)]
struct Tile {
    tm: usize,
    tk: usize,
    tn: usize,
    /// aie::mmul<R, S, T>.
    r: usize,
    s: usize,
    t: usize,
    int8: bool,
    out: Elem,
    arch: Arch,
    macs_per_cycle: f64,
}

impl Tile {
    fn input(&self) -> Elem {
        if self.int8 {
            Elem::I8
        } else {
            Elem::Bf16
        }
    }
    fn acc(&self) -> Elem {
        if self.int8 {
            Elem::I32
        } else {
            Elem::F32
        }
    }
    fn a_ty(&self) -> ArgType {
        ArgType::Mem(MemType::new(&[self.tm, self.tk], self.input()))
    }
    fn b_ty(&self) -> ArgType {
        ArgType::Mem(MemType::new(&[self.tk, self.tn], self.input()))
    }
    fn acc_ty(&self) -> ArgType {
        ArgType::Mem(MemType::new(&[self.tm, self.tn], self.acc()))
    }
    fn c_ty(&self) -> ArgType {
        ArgType::Mem(MemType::new(&[self.tm, self.tn], self.out))
    }
    fn a_layout(&self) -> Blocked {
        Blocked::new(self.tm, self.tk, self.r, self.s)
    }
    fn b_layout(&self) -> Blocked {
        Blocked::new(self.tk, self.tn, self.s, self.t)
    }
    fn acc_layout(&self) -> Blocked {
        Blocked::new(self.tm, self.tn, self.r, self.t)
    }
}

/// The functions of a matmul, ffn or lm_head entry.
pub(crate) fn library(spec: &KernelSpec, plan: &Plan) -> Result<CoreLibrary, CallError> {
    let origin = spec.origin();
    let lim = spec.device.limits();
    let arch = Arch::from_name(lim.arch).ok_or_else(|| {
        CallError(format!(
            "{origin}: no exp2 model for architecture {}",
            lim.arch
        ))
    })?;
    let out = match spec.op {
        Op::Matmul { quant: Some(q), .. } if q.requantize_output => Elem::I8,
        Op::Matmul { .. } | Op::Ffn { .. } => Elem::Bf16,
        Op::LmHead { .. } => Elem::F32,
        Op::Attention { .. } | Op::LayerNorm { .. } => {
            return Err(CallError(format!(
                "{origin}: {} is not a matmul-like family",
                spec.family
            )))
        }
    };
    let int8 = match spec.dtype {
        Dtype::Int8 => true,
        Dtype::Bf16 => false,
        Dtype::F32 => {
            return Err(CallError(format!(
                "{origin}: the gemm kernels take bf16 or int8 inputs, not f32"
            )))
        }
    };
    let (r, s, t) = lim.mmul(spec.dtype);
    let tl = &spec.tiling;
    let tile = Tile {
        tm: tl.tile_m,
        tk: tl.tile_k,
        tn: tl.tile_n,
        r,
        s,
        t,
        int8,
        out,
        arch,
        macs_per_cycle: lim.macs_per_cycle(spec.dtype),
    };
    let whole = tile.tm.is_multiple_of(r) && tile.tk.is_multiple_of(s) && tile.tn.is_multiple_of(t);
    if !whole || tile.tm * tile.tn == 0 {
        return Err(CallError(format!(
            "{origin}: tiles {}x{}x{} are not whole aie::mmul<{r},{s},{t}> blocks",
            tile.tm, tile.tk, tile.tn
        )));
    }
    let mut lib = CoreLibrary::default();
    lib.insert(
        "zero_acc",
        Box::new(ZeroAcc {
            tile,
            sig: vec![tile.acc_ty()],
        }),
    );
    lib.insert(
        "matmul_tile",
        Box::new(MatmulTile {
            tile,
            sig: vec![tile.a_ty(), tile.b_ty(), tile.acc_ty()],
        }),
    );
    for (i, p) in plan.passes.iter().enumerate() {
        if p.residual && tile.tk != tile.tn {
            return Err(CallError(format!(
                "{origin}: pass {i} adds a residual tile in the A layout, which needs tile_k == tile_n"
            )));
        }
        let words = if int8 { 3 } else { 1 };
        if p.params && tile.tk < words * (4 / tile.input().bytes()) {
            return Err(CallError(format!(
                "{origin}: pass {i}: the parameter tile has {} rows, too few for {words} words per channel",
                tile.tk
            )));
        }
        if out == Elem::I8 && !p.params {
            return Err(CallError(format!(
                "{origin}: pass {i} requantises to int8 but has no parameter tile for 1/s_out"
            )));
        }
        let mut sig = vec![tile.acc_ty()];
        if p.params {
            sig.push(tile.b_ty());
        }
        if p.residual {
            sig.push(tile.a_ty());
        }
        sig.push(tile.c_ty());
        let name = format!("epilogue_{i}");
        lib.insert(
            name.clone(),
            Box::new(Epilogue {
                name,
                tile,
                params: p.params,
                gelu: p.gelu,
                residual: p.residual,
                sig,
            }),
        );
    }
    Ok(lib)
}

/// `zero_acc(acc)`: acc = 0.
struct ZeroAcc {
    tile: Tile,
    sig: Vec<ArgType>,
}

impl CoreFunction for ZeroAcc {
    fn signature(&self) -> &[ArgType] {
        &self.sig
    }

    fn call(&self, args: &mut [Arg<'_>]) -> Result<(), CallError> {
        let b = view::bind("zero_acc", &self.sig, args)?;
        let [acc] = view::take("zero_acc", b.mems)?;
        // +0.0 and 0i32 are both all-zero bytes.
        acc.fill(0);
        Ok(())
    }

    fn cycles(&self) -> u64 {
        CALL_OVERHEAD + cost::vector_cycles(self.tile.tm * self.tile.tn, 1)
    }
}

/// `matmul_tile(a, b, acc)`: acc += A · B.
struct MatmulTile {
    tile: Tile,
    sig: Vec<ArgType>,
}

impl CoreFunction for MatmulTile {
    fn signature(&self) -> &[ArgType] {
        &self.sig
    }

    fn call(&self, args: &mut [Arg<'_>]) -> Result<(), CallError> {
        const F: &str = "matmul_tile";
        let b = view::bind(F, &self.sig, args)?;
        let [a, bm, acc] = view::take(F, b.mems)?;
        let t = &self.tile;
        let (la, lb, lc) = (t.a_layout(), t.b_layout(), t.acc_layout());
        if t.int8 {
            let mut ar = vec![0i32; la.len()];
            let mut br = vec![0i32; lb.len()];
            let mut cr = vec![0i32; lc.len()];
            la.unpack(view::i8s(a), &mut ar, i32::from);
            lb.unpack(view::i8s(bm), &mut br, i32::from);
            let acc = view::i32s_mut(F, "accumulator", acc)?;
            lc.unpack(acc, &mut cr, |x| x);
            mm_acc(&ar, &br, &mut cr, t.tm, t.tk, t.tn);
            lc.pack(&cr, acc, |x| x);
        } else {
            let mut ar = vec![0f32; la.len()];
            let mut br = vec![0f32; lb.len()];
            let mut cr = vec![0f32; lc.len()];
            la.unpack(view::bf16(F, "A", a)?, &mut ar, bf16_to_f32);
            lb.unpack(view::bf16(F, "B", bm)?, &mut br, bf16_to_f32);
            let acc = view::f32s_mut(F, "accumulator", acc)?;
            lc.unpack(acc, &mut cr, |x| x);
            mm_acc(&ar, &br, &mut cr, t.tm, t.tk, t.tn);
            lc.pack(&cr, acc, |x| x);
        }
        Ok(())
    }

    fn cycles(&self) -> u64 {
        let t = &self.tile;
        CALL_OVERHEAD + cost::mac_cycles(t.tm * t.tk * t.tn, t.macs_per_cycle)
    }
}

/// `epilogue_<i>(acc[, prm][, res], y)`.
struct Epilogue {
    name: String,
    tile: Tile,
    params: bool,
    gelu: bool,
    residual: bool,
    sig: Vec<ArgType>,
}

impl Epilogue {
    /// 32-bit word `w` of every channel of the parameter tile (`param_word`), as f32.
    fn words(&self, prm: &[u8], w: usize) -> Result<Vec<f32>, CallError> {
        let t = &self.tile;
        let lb = t.b_layout();
        Ok(if t.int8 {
            (0..t.tn)
                .map(|n| {
                    let bits = (0..4).fold(0u32, |v, byte| {
                        v | u32::from(prm[lb.at(4 * w + byte, n)]) << (8 * byte)
                    });
                    f32::from_bits(bits)
                })
                .collect()
        } else {
            let p = view::bf16(&self.name, "parameter", prm)?;
            (0..t.tn)
                .map(|n| {
                    let bits =
                        u32::from(p[lb.at(2 * w, n)]) | (u32::from(p[lb.at(2 * w + 1, n)]) << 16);
                    f32::from_bits(bits)
                })
                .collect()
        })
    }
}

impl CoreFunction for Epilogue {
    fn signature(&self) -> &[ArgType] {
        &self.sig
    }

    fn call(&self, args: &mut [Arg<'_>]) -> Result<(), CallError> {
        let f = self.name.as_str();
        let b = view::bind(f, &self.sig, args)?;
        let mut mems = b.mems.into_iter();
        let mut next = || {
            mems.next()
                .ok_or_else(|| CallError(format!("{f}: missing buffer")))
        };
        let acc = next()?;
        let prm = if self.params { Some(next()?) } else { None };
        let res = if self.residual { Some(next()?) } else { None };
        let y = next()?;
        let t = &self.tile;
        let (tm, tn) = (t.tm, t.tn);

        // Accumulator as f32, row-major (int8: dequantised with the per-channel scale).
        let mut v = vec![0f32; tm * tn];
        let lc = t.acc_layout();
        let (bias, inv_out) = match &prm {
            Some(p) => {
                let bias = self.words(p, 0)?;
                let inv_out = if t.out == Elem::I8 {
                    self.words(p, 2)?[0]
                } else {
                    1.0
                };
                (Some(bias), inv_out)
            }
            None => (None, 1.0),
        };
        if t.int8 {
            let p = prm
                .as_ref()
                .ok_or_else(|| CallError(format!("{f}: int8 needs the parameter tile")))?;
            let scale = self.words(p, 1)?;
            lc.unpack(view::i32s(f, "accumulator", acc)?, &mut v, |x| x as f32);
            for row in v.chunks_exact_mut(tn) {
                for (x, s) in row.iter_mut().zip(&scale) {
                    *x *= s;
                }
            }
        } else {
            lc.unpack(view::f32s(f, "accumulator", acc)?, &mut v, |x| x);
        }
        if let Some(bias) = &bias {
            for row in v.chunks_exact_mut(tn) {
                for (x, b) in row.iter_mut().zip(bias) {
                    *x += b;
                }
            }
        }
        if self.gelu {
            for x in v.iter_mut() {
                *x = numerics::gelu(t.arch, *x);
            }
        }
        if let Some(res) = &res {
            // A layout with tk == tn columns.
            let mut r = vec![0f32; tm * t.tk];
            t.a_layout()
                .unpack(view::bf16(f, "residual", res)?, &mut r, bf16_to_f32);
            for (x, r) in v.iter_mut().zip(&r) {
                *x += r;
            }
        }
        match t.out {
            Elem::Bf16 => {
                for (o, x) in view::bf16_mut(f, "output", y)?.iter_mut().zip(&v) {
                    *o = f32_to_bf16(*x);
                }
            }
            Elem::F32 => view::f32s_mut(f, "output", y)?.copy_from_slice(&v),
            Elem::I8 => {
                for (o, x) in view::i8s_mut(y).iter_mut().zip(&v) {
                    *o = numerics::requantize_i8(*x, inv_out);
                }
            }
            Elem::I32 => return Err(CallError(format!("{f}: no i32 output exists"))),
        }
        Ok(())
    }

    fn cycles(&self) -> u64 {
        let t = &self.tile;
        let elems = t.tm * t.tn;
        // Per 16 lanes: accumulator load and output conversion/store; the scalar loops gather
        // 16 lanes of scale, bias and residual and scatter 16 outputs row-major.
        let mut ops = 2;
        let mut scalar = 16;
        if t.int8 {
            ops += 4;
            scalar += 16;
        }
        if self.params {
            ops += 2;
            scalar += 16;
        }
        if self.gelu {
            ops += cost::gelu_ops(t.arch);
        }
        if self.residual {
            ops += 2;
            scalar += 32;
        }
        let words = match (self.params, t.int8) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        };
        // param_word: 2 (bf16) or 4 (int8) scalar loads per word and channel.
        let prep = (t.tn * words * (4 / t.input().bytes())) as u64;
        CALL_OVERHEAD + prep + cost::vector_cycles(elems, ops) + (elems as u64) * scalar / 16
    }
}
