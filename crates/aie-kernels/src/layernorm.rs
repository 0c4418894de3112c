//! Model of `templates/layernorm/layernorm.cc.jinja`: `layernorm_rows(x, gb, y)` normalises
//! the `tm` rows of one block, `gb` = [gamma (dim f32); beta (dim f32)].
//!
//! Per row, as the C++ does it in f32: 16 lane sums (lane l adds x[l], x[l+16], ... in order),
//! reduced by `aie::reduce_add` (halving tree), times the f32 constant 1/dim; the same for the
//! squared deviations; inv = invsqrt(var + eps) (modelled as 1/sqrt in f64 rounded to
//! f32, see `numerics`); y = ((x - mean)·inv)·gamma + beta, rounded once to the output type
//! (bf16 nearest-even, or f32).

use kernel_spec::{Dtype, KernelSpec, Op, Plan};

use crate::cost::{self, CALL_OVERHEAD};
use crate::numerics::{bf16_to_f32, f32_to_bf16, reduce_add16};
use crate::view;
use crate::{Arg, ArgType, CallError, CoreFunction, CoreLibrary, Elem, MemType};

/// `EPS` as kernel-spec's render context prints `f.eps` (`{eps:e}`); the C++ reads the literal
/// as the nearest f32.
pub(crate) fn eps_literal(eps: f64) -> String {
    format!("{eps:e}")
}

pub(crate) fn library(spec: &KernelSpec, _plan: &Plan) -> Result<CoreLibrary, CallError> {
    let origin = spec.origin();
    let Op::LayerNorm { dim, eps, .. } = spec.op else {
        return Err(CallError(format!("{origin}: not a layernorm entry")));
    };
    let elem = match spec.dtype {
        Dtype::Bf16 => Elem::Bf16,
        Dtype::F32 => Elem::F32,
        Dtype::Int8 => {
            return Err(CallError(format!(
                "{origin}: layernorm takes bf16 or f32, not int8"
            )))
        }
    };
    if dim == 0 || !dim.is_multiple_of(16) {
        return Err(CallError(format!(
            "{origin}: dim = {dim} is not a multiple of the kernel's 16-lane vectors"
        )));
    }
    let lit = eps_literal(eps);
    let eps: f32 = lit
        .parse()
        .map_err(|e| CallError(format!("{origin}: eps literal {lit}: {e}")))?;
    let tm = spec.tiling.tile_m;
    let x_ty = ArgType::Mem(MemType::new(&[tm, dim], elem));
    let sig = vec![
        x_ty.clone(),
        ArgType::Mem(MemType::new(&[2 * dim], Elem::F32)),
        x_ty,
    ];
    let mut lib = CoreLibrary::default();
    lib.insert(
        "layernorm_rows",
        Box::new(Rows {
            tm,
            dim,
            eps,
            elem,
            sig,
        }),
    );
    Ok(lib)
}

struct Rows {
    tm: usize,
    dim: usize,
    eps: f32,
    elem: Elem,
    sig: Vec<ArgType>,
}

impl Rows {
    /// One row: `x` widened to f32, `y` in f32 before the output rounding.
    fn row(&self, x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32]) {
        let inv_dim = 1.0f32 / self.dim as f32;
        let mut sum = [0f32; 16];
        for chunk in x.chunks_exact(16) {
            for (s, &v) in sum.iter_mut().zip(chunk) {
                *s += v;
            }
        }
        let mean = reduce_add16(&sum) * inv_dim;
        let mut sq = [0f32; 16];
        for chunk in x.chunks_exact(16) {
            for (s, &v) in sq.iter_mut().zip(chunk) {
                let d = v - mean;
                *s += d * d;
            }
        }
        let var = reduce_add16(&sq) * inv_dim;
        let inv = (1.0 / f64::from(var + self.eps).sqrt()) as f32;
        for (((o, &v), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
            *o = ((v - mean) * inv) * g + b;
        }
    }
}

impl CoreFunction for Rows {
    fn signature(&self) -> &[ArgType] {
        &self.sig
    }

    fn call(&self, args: &mut [Arg<'_>]) -> Result<(), CallError> {
        const F: &str = "layernorm_rows";
        let b = view::bind(F, &self.sig, args)?;
        let [x, gb, y] = view::take(F, b.mems)?;
        let gb = view::f32s(F, "gamma/beta", gb)?;
        let (gamma, beta) = gb.split_at(self.dim);
        let mut xr = vec![0f32; self.tm * self.dim];
        match self.elem {
            Elem::Bf16 => {
                for (d, &s) in xr.iter_mut().zip(view::bf16(F, "x", x)?) {
                    *d = bf16_to_f32(s);
                }
            }
            _ => xr.copy_from_slice(view::f32s(F, "x", x)?),
        }
        let mut yr = vec![0f32; self.tm * self.dim];
        for (xs, ys) in xr.chunks_exact(self.dim).zip(yr.chunks_exact_mut(self.dim)) {
            self.row(xs, gamma, beta, ys);
        }
        match self.elem {
            Elem::Bf16 => {
                for (d, &s) in view::bf16_mut(F, "y", y)?.iter_mut().zip(&yr) {
                    *d = f32_to_bf16(s);
                }
            }
            _ => view::f32s_mut(F, "y", y)?.copy_from_slice(&yr),
        }
        Ok(())
    }

    fn cycles(&self) -> u64 {
        // Per 16 lanes: sum pass (load, convert, add), deviation pass (load, convert, sub, mul,
        // add), output pass (load, convert, sub, mul, 2 loads, mul, add, convert, store); per
        // row two 4-step reductions, the scalar statistics and one vector invsqrt.
        let convert = u64::from(self.elem == Elem::Bf16);
        let per_row = cost::vector_cycles(self.dim, 3 + 5 + 10 + 3 * convert) + 8 + 6 + 8;
        CALL_OVERHEAD + self.tm as u64 * per_row
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use kernel_spec::Op;

    #[test]
    fn eps_is_the_rendered_literal() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let specs = kernel_spec::load_dir(&root.join("kernel-specs")).expect("kernel-specs load");
        let mut seen = 0;
        for spec in specs
            .iter()
            .filter(|s| matches!(s.op, Op::LayerNorm { .. }))
        {
            let Op::LayerNorm { eps, .. } = spec.op else {
                unreachable!()
            };
            let r = kernel_spec::render(spec, &root.join("templates")).expect("renders");
            let lit = super::eps_literal(eps);
            assert!(
                r.files[1].1.contains(&format!("EPS = {lit}f;")),
                "{}: EPS is not {lit}",
                spec.name
            );
            seen += 1;
        }
        assert!(seen > 0);
    }
}
