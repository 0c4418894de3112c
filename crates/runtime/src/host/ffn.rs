//! Fused FFN host buffers (`templates/ffn/design.mlir.jinja`), `Y = R + fc2(GELU(fc1(X)))`:
//! `x` X[M,d]; `w1` W1ᵀ (planes) and the b1 parameter tiles; `h` H[M,d_ff] scratch (written by
//! pass 0, read by pass 1) with the residual R[M,d] behind it (where the plan puts it: pass 1's
//! residual argument and offset); `w2` W2ᵀ and the b2 tiles; `y` Y[M,d].

use kernel_spec::{KernelSpec, Op};

use super::bytes::{get_bf16, put_bf16_run};
use super::gemm::{bf16_b_image, Gemm};
use super::{call_error, layout_error, Elem, HostArg, Invocation, RunStats};
use crate::{Linear, RuntimeError};

#[derive(Debug, Clone, PartialEq)]
pub struct FfnLayout {
    pub(crate) name: String,
    pub(crate) origin: String,
    pub(crate) gemm: Gemm,
    pub(crate) rows: usize,
    pub(crate) d: usize,
    pub(crate) dff: usize,
}

impl FfnLayout {
    pub fn of(spec: &KernelSpec) -> Result<FfnLayout, RuntimeError> {
        let Op::Ffn {
            rows,
            d_model,
            d_ff,
            ..
        } = spec.op
        else {
            return Err(layout_error(spec, "not an ffn entry"));
        };
        let gemm = Gemm::of(spec, Elem::Bf16, Elem::Bf16)?;
        if gemm.passes.len() != 2
            || gemm.passes[1].r.is_none()
            || gemm.passes[1].a != gemm.passes[0].c
        {
            return Err(layout_error(
                spec,
                "the ffn plan must be two passes, the second reading the first's output and adding a residual",
            ));
        }
        Ok(FfnLayout {
            name: spec.name.clone(),
            origin: spec.origin(),
            gemm,
            rows,
            d: d_model,
            dff: d_ff,
        })
    }

    pub fn args(&self) -> &[HostArg] {
        &self.gemm.args
    }

    /// `src` (`[rows, d]`) as bf16 rows of `[M, d]` into `dst` (which starts at the rows).
    pub fn pack_rows(&self, src: &[f32], rows: usize, dst: &mut [u8]) {
        let (m, d) = (self.gemm.passes[0].m, self.d);
        dst[..2 * m * d].fill(0);
        for r in 0..rows {
            put_bf16_run(dst, r * d, &src[r * d..(r + 1) * d]);
        }
    }

    /// The residual's argument and its first byte there.
    pub fn residual_at(&self) -> (usize, usize) {
        let p = &self.gemm.passes[1];
        (p.r.expect("checked in of()"), 2 * p.r_offset)
    }

    pub fn unpack_y(&self, src: &[u8], rows: usize, out: &mut [f32]) {
        for (i, o) in out[..rows * self.d].iter_mut().enumerate() {
            *o = get_bf16(src, i);
        }
    }
}

/// Runs `out = residual + fc2(GELU(fc1(x)))` through the entry's design.
#[allow(clippy::too_many_arguments)]
pub fn run(
    inv: &mut dyn Invocation,
    lay: &FfnLayout,
    x: &[f32],
    rows: usize,
    fc1: &Linear,
    fc2: &Linear,
    residual: &[f32],
    out: &mut [f32],
) -> Result<RunStats, RuntimeError> {
    let (d, dff) = (lay.d, lay.dff);
    if rows > lay.gemm.passes[0].m || (fc1.in_f, fc1.out_f, fc2.in_f, fc2.out_f) != (d, dff, dff, d)
    {
        return Err(call_error(
            &lay.origin,
            format!(
                "the entry is {}x{d}x{dff}, the call is {rows} rows of {}→{}→{}",
                lay.rows, fc1.in_f, fc1.out_f, fc2.out_f
            ),
        ));
    }
    let (p0, p1) = (lay.gemm.passes[0].clone(), lay.gemm.passes[1].clone());
    lay.pack_rows(x, rows, inv.write(p0.a, 0));
    let (r, at) = lay.residual_at();
    lay.pack_rows(residual, rows, inv.write(r, at));
    for (i, lin) in [(0, fc1), (1, fc2)] {
        let key = format!("{}/{}", lay.name, lay.gemm.args[lay.gemm.passes[i].b].name);
        let shape = (lin.out_f, lin.in_f);
        let img = lin.image(&key, || {
            bf16_b_image(&lay.gemm, i, &lin.w, shape, lin.b.as_deref())
        });
        inv.load_image(lay.gemm.passes[i].b, &img);
    }
    let stats = inv.run(&[p1.c])?;
    lay.unpack_y(inv.bytes(p1.c), rows, out);
    Ok(stats)
}
