//! LayerNorm host buffers (`templates/layernorm/design.mlir.jinja`): `x` X[M,dim], `params`
//! [gamma; beta] as 2·dim f32, `y` Y[M,dim]; x and y in the entry's dtype (bf16 or f32).
//! A bf16 kernel reads gamma and beta as bf16 values (as the CPU model does), so the host
//! sends them rounded.

use kernel_spec::{Dtype, KernelSpec, Op};

use super::bytes::{get_bf16, get_f32, put_bf16_run, put_f32_run};
use super::{call_error, layout_error, plan_error, Elem, HostArg, Invocation, RunStats};
use crate::numerics::round_bf16;
use crate::RuntimeError;

#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormLayout {
    pub(crate) origin: String,
    pub(crate) rows: usize,
    /// Padded rows.
    pub(crate) m: usize,
    pub(crate) dim: usize,
    pub(crate) eps: f64,
    pub(crate) elem: Elem,
    pub(crate) args: Vec<HostArg>,
}

impl LayerNormLayout {
    pub fn of(spec: &KernelSpec) -> Result<LayerNormLayout, RuntimeError> {
        let Op::LayerNorm { rows, dim, eps } = spec.op else {
            return Err(layout_error(spec, "not a layernorm entry"));
        };
        let plan = kernel_spec::plan(spec).map_err(|e| plan_error(spec, e))?;
        let elem = match spec.dtype {
            Dtype::F32 => Elem::F32,
            _ => Elem::Bf16,
        };
        let arg = |name: &str, len: usize, elem: Elem| HostArg {
            name: name.into(),
            elem,
            len,
        };
        Ok(LayerNormLayout {
            origin: spec.origin(),
            rows,
            m: plan.m,
            dim,
            eps,
            elem,
            args: vec![
                arg("x", plan.m * dim, elem),
                arg("params", 2 * dim, Elem::F32),
                arg("y", plan.m * dim, elem),
            ],
        })
    }

    pub fn args(&self) -> &[HostArg] {
        &self.args
    }

    /// Whether the design's ε (fixed at render time) is the call's.
    pub fn serves_eps(&self, eps: f32) -> bool {
        self.eps as f32 == eps
    }

    pub fn pack_x(&self, x: &[f32], rows: usize, dst: &mut [u8]) {
        dst.fill(0);
        let src = &x[..rows * self.dim];
        match self.elem {
            Elem::F32 => put_f32_run(dst, 0, src),
            _ => put_bf16_run(dst, 0, src),
        }
    }

    pub fn pack_params(&self, gamma: &[f32], beta: &[f32], dst: &mut [u8]) {
        let rd = |v: &f32| {
            if self.elem == Elem::Bf16 {
                round_bf16(*v)
            } else {
                *v
            }
        };
        let gb: Vec<f32> = gamma[..self.dim]
            .iter()
            .chain(&beta[..self.dim])
            .map(rd)
            .collect();
        put_f32_run(dst, 0, &gb);
    }

    pub fn unpack_y(&self, src: &[u8], rows: usize, out: &mut [f32]) {
        for (i, o) in out[..rows * self.dim].iter_mut().enumerate() {
            *o = match self.elem {
                Elem::F32 => get_f32(src, i),
                _ => get_bf16(src, i),
            };
        }
    }
}

/// Runs LayerNorm over `rows × dim` through the entry's design.
pub fn run(
    inv: &mut dyn Invocation,
    lay: &LayerNormLayout,
    x: &[f32],
    (rows, dim): (usize, usize),
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    out: &mut [f32],
) -> Result<RunStats, RuntimeError> {
    if rows > lay.m || dim != lay.dim || !lay.serves_eps(eps) {
        return Err(call_error(
            &lay.origin,
            format!(
                "the entry is {} rows of {} with eps {}, the call {rows} rows of {dim} with eps {eps}",
                lay.rows, lay.dim, lay.eps
            ),
        ));
    }
    lay.pack_x(x, rows, inv.write(0, 0));
    lay.pack_params(gamma, beta, inv.write(1, 0));
    let stats = inv.run(&[2])?;
    lay.unpack_y(inv.bytes(2), rows, out);
    Ok(stats)
}
