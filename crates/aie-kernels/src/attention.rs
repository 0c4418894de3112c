//! Models of `templates/attention/attention.cc.jinja`: flash attention over one block of `tm`
//! queries of one head, one block of `tn` keys per `attn_step`.
//!
//! - `attn_params(kv, rtp)`: the run-time parameters arrive as one object on the K/V stream:
//!   32-bit word w is bf16 element 2w (low 16 bits) and 2w+1 (high 16 bits); word 0 (valid keys)
//!   and word 1 (causal offset: query i sees keys 0..=offset+i) go to rtp[0], rtp[1]; rtp[2],
//!   rtp[3] = 0.
//! - `attn_init(oacc, stats)`: O = 0, m = -inf, l = 0 (`stats` = [m (tm); l (tm)]).
//! - `attn_step(q, kv, oacc, stats, s, p, rtp, q0, k0)`: S = Q K^T (f32, k in order), scaled by
//!   log2(e)/sqrt(head_dim), masked to -inf (key >= valid, or causal key > offset + query);
//!   m' = max(m, rowmax S); alpha = exp2(max(m - m', -80)) (exp2(-80) for the first valid
//!   block, 1 while a row has no valid key, in which case m' = 0 for the exponent);
//!   P = exp2(max(S - m', -80)), rowsum in key order; P rounded to bf16 into the A layout;
//!   l = l·alpha + rowsum; O = O·alpha; O += P · V (f32, k in order).
//! - `attn_finish(oacc, stats, o)`: o = bf16(O · (1/l)) row-major, 0 where l = 0.
//!
//! Layouts: Q an A tile (R x S blocks), K^T (`head_dim x tn`) then V (`tn x head_dim`) as B
//! tiles (S x T blocks) in `kv`, S and O accumulator tiles (R x T blocks), P an A tile.
//!
//! Note: a masked score still contributes exp2(-80) to P and l (the C++ clamps before exp2),
//! so a row with no valid key at all ends with l = tn·2^-80 per block > 0 and its output is the
//! average of V over the block's keys rather than the 0 the C++ comment promises.

use kernel_spec::{AttentionKind, KernelSpec, Op, Plan};

use crate::cost::{self, CALL_OVERHEAD};
use crate::mmul::{mm_acc, Blocked};
use crate::numerics::{self, bf16_to_f32, f32_to_bf16, round_bf16, Arch};
use crate::view;
use crate::{Arg, ArgType, CallError, CoreFunction, CoreLibrary, Elem, MemType};

/// exp2 arguments are clamped here (`EXP2_FLOOR`).
const EXP2_FLOOR: f32 = -80.0;

/// Shapes and constants shared by the four functions.
#[derive(Debug, Clone, Copy)]
struct Shape {
    tm: usize,
    tn: usize,
    hd: usize,
    r: usize,
    s: usize,
    t: usize,
    /// Padded query rows and keys of the whole call (for the range checks).
    m_padded: usize,
    n_padded: usize,
    causal: bool,
    /// `SCALE` of the C++: log2(e)/sqrt(head_dim) as kernel-spec prints it, read as f32.
    scale: f32,
    arch: Arch,
    macs_per_cycle: f64,
}

impl Shape {
    fn q_ty(&self) -> ArgType {
        ArgType::Mem(MemType::new(&[self.tm, self.hd], Elem::Bf16))
    }
    fn kv_ty(&self) -> ArgType {
        ArgType::Mem(MemType::new(&[2 * self.tn * self.hd], Elem::Bf16))
    }
    fn oacc_ty(&self) -> ArgType {
        ArgType::Mem(MemType::new(&[self.tm, self.hd], Elem::F32))
    }
    fn stats_ty(&self) -> ArgType {
        ArgType::Mem(MemType::new(&[2 * self.tm], Elem::F32))
    }
    fn s_ty(&self) -> ArgType {
        ArgType::Mem(MemType::new(&[self.tm, self.tn], Elem::F32))
    }
    fn p_ty(&self) -> ArgType {
        ArgType::Mem(MemType::new(&[self.tm, self.tn], Elem::Bf16))
    }
    fn rtp_ty(&self) -> ArgType {
        ArgType::Mem(MemType::new(&[4], Elem::I32))
    }

    /// Checks the run-time parameters as the kernel will use them.
    fn check_rtp(&self, func: &str, valid: i32, offset: i32) -> Result<(), CallError> {
        if valid < 0 || valid as usize > self.n_padded {
            return Err(CallError(format!(
                "{func}: valid keys = {valid} (rtp[0]) is outside 0..={}, the padded kv length; \
                 the host must write the number of valid keys (at most kv_len)",
                self.n_padded
            )));
        }
        if self.causal && offset < 0 {
            return Err(CallError(format!(
                "{func}: causal offset = {offset} (rtp[1]) is negative; query i sees keys \
                 0..=offset+i, so the host must write the number of keys before the first query"
            )));
        }
        Ok(())
    }
}

/// log2(e)/sqrt(head_dim) printed as kernel-spec's render context prints `f.scale`
/// (`{:.9e}`), then read as the C++ reads the literal (nearest f32).
pub(crate) fn scale_literal(head_dim: usize) -> String {
    format!(
        "{:.9e}",
        std::f64::consts::LOG2_E / (head_dim as f64).sqrt()
    )
}

pub(crate) fn library(spec: &KernelSpec, plan: &Plan) -> Result<CoreLibrary, CallError> {
    let origin = spec.origin();
    let Op::Attention { kind, head_dim, .. } = spec.op else {
        return Err(CallError(format!("{origin}: not an attention entry")));
    };
    let lim = spec.device.limits();
    let arch = Arch::from_name(lim.arch).ok_or_else(|| {
        CallError(format!(
            "{origin}: no exp2 model for architecture {}",
            lim.arch
        ))
    })?;
    let (r, s, t) = lim.mmul(spec.dtype);
    let lit = scale_literal(head_dim);
    let scale: f32 = lit
        .parse()
        .map_err(|e| CallError(format!("{origin}: scale literal {lit}: {e}")))?;
    let sh = Shape {
        tm: spec.tiling.tile_m,
        tn: spec.tiling.tile_n,
        hd: head_dim,
        r,
        s,
        t,
        m_padded: plan.m,
        n_padded: plan.n,
        causal: kind == AttentionKind::CausalSelf,
        scale,
        arch,
        macs_per_cycle: lim.macs_per_cycle(spec.dtype),
    };
    // The C++'s static_asserts: C blocks in 16-lane vectors, P re-blocked from C into A blocks.
    if (r * t) % 16 != 0 || !(s == t || (s == 2 * t && r * t == 16)) {
        return Err(CallError(format!(
            "{origin}: aie::mmul<{r},{s},{t}> does not fit the attention kernel (R*T a multiple of 16; S == T, or S == 2T with R*T == 16)"
        )));
    }
    let divides = sh.tm.is_multiple_of(r)
        && sh.tn.is_multiple_of(s)
        && sh.tn.is_multiple_of(t)
        && sh.hd.is_multiple_of(s)
        && sh.hd.is_multiple_of(t);
    if !divides || sh.tm == 0 || sh.tn == 0 {
        return Err(CallError(format!(
            "{origin}: tiles {}x{} with head_dim {} are not whole aie::mmul<{r},{s},{t}> blocks",
            sh.tm, sh.tn, sh.hd
        )));
    }
    let mut lib = CoreLibrary::default();
    lib.insert(
        "attn_params",
        Box::new(Params {
            sh,
            sig: vec![sh.kv_ty(), sh.rtp_ty()],
        }),
    );
    lib.insert(
        "attn_init",
        Box::new(Init {
            sh,
            sig: vec![sh.oacc_ty(), sh.stats_ty()],
        }),
    );
    lib.insert(
        "attn_step",
        Box::new(Step {
            sh,
            sig: vec![
                sh.q_ty(),
                sh.kv_ty(),
                sh.oacc_ty(),
                sh.stats_ty(),
                sh.s_ty(),
                sh.p_ty(),
                sh.rtp_ty(),
                ArgType::I32,
                ArgType::I32,
            ],
        }),
    );
    lib.insert(
        "attn_finish",
        Box::new(Finish {
            sh,
            sig: vec![sh.oacc_ty(), sh.stats_ty(), sh.q_ty()],
        }),
    );
    Ok(lib)
}

/// `attn_params(kv, rtp)`.
struct Params {
    sh: Shape,
    sig: Vec<ArgType>,
}

impl CoreFunction for Params {
    fn signature(&self) -> &[ArgType] {
        &self.sig
    }

    fn call(&self, args: &mut [Arg<'_>]) -> Result<(), CallError> {
        const F: &str = "attn_params";
        let b = view::bind(F, &self.sig, args)?;
        let [kv, rtp] = view::take(F, b.mems)?;
        let kv = view::bf16(F, "parameter", kv)?;
        let word = |w: usize| (u32::from(kv[2 * w]) | (u32::from(kv[2 * w + 1]) << 16)) as i32;
        let (valid, offset) = (word(0), word(1));
        self.sh.check_rtp(F, valid, offset)?;
        view::i32s_mut(F, "rtp", rtp)?.copy_from_slice(&[valid, offset, 0, 0]);
        Ok(())
    }

    fn cycles(&self) -> u64 {
        CALL_OVERHEAD + 8
    }
}

/// `attn_init(oacc, stats)`.
struct Init {
    sh: Shape,
    sig: Vec<ArgType>,
}

impl CoreFunction for Init {
    fn signature(&self) -> &[ArgType] {
        &self.sig
    }

    fn call(&self, args: &mut [Arg<'_>]) -> Result<(), CallError> {
        const F: &str = "attn_init";
        let b = view::bind(F, &self.sig, args)?;
        let [oacc, stats] = view::take(F, b.mems)?;
        oacc.fill(0);
        let stats = view::f32s_mut(F, "stats", stats)?;
        let (m, l) = stats.split_at_mut(self.sh.tm);
        m.fill(f32::NEG_INFINITY);
        l.fill(0.0);
        Ok(())
    }

    fn cycles(&self) -> u64 {
        CALL_OVERHEAD + cost::vector_cycles(self.sh.tm * self.sh.hd, 1) + 2 * self.sh.tm as u64
    }
}

/// `attn_step(q, kv, oacc, stats, s, p, rtp, q0, k0)`.
struct Step {
    sh: Shape,
    sig: Vec<ArgType>,
}

impl CoreFunction for Step {
    fn signature(&self) -> &[ArgType] {
        &self.sig
    }

    fn call(&self, args: &mut [Arg<'_>]) -> Result<(), CallError> {
        const F: &str = "attn_step";
        let b = view::bind(F, &self.sig, args)?;
        let (q0, k0) = (b.ints[0], b.ints[1]);
        let [q, kv, oacc, stats, s_buf, p_buf, rtp] = view::take(F, b.mems)?;
        let sh = &self.sh;
        let (tm, tn, hd) = (sh.tm, sh.tn, sh.hd);
        let rtp = view::i32s(F, "rtp", rtp)?;
        let (valid, offset) = (rtp[0], rtp[1]);
        sh.check_rtp(F, valid, offset)?;
        if q0 < 0 || !(q0 as usize).is_multiple_of(tm) || q0 as usize + tm > sh.m_padded {
            return Err(CallError(format!(
                "{F}: q0 = {q0} is not the first row of a {tm}-row query block inside the {} padded queries",
                sh.m_padded
            )));
        }
        if k0 < 0 || !(k0 as usize).is_multiple_of(tn) || k0 as usize + tn > sh.n_padded {
            return Err(CallError(format!(
                "{F}: k0 = {k0} is not the first key of a {tn}-key block inside the {} padded keys",
                sh.n_padded
            )));
        }

        // Row-major f32 copies of Q, K^T, V and the O accumulator.
        let kv = view::bf16(F, "kv", kv)?;
        let (kt, v) = kv.split_at(hd * tn);
        let mut q_rm = vec![0f32; tm * hd];
        Blocked::new(tm, hd, sh.r, sh.s).unpack(view::bf16(F, "q", q)?, &mut q_rm, bf16_to_f32);
        let mut kt_rm = vec![0f32; hd * tn];
        Blocked::new(hd, tn, sh.s, sh.t).unpack(kt, &mut kt_rm, bf16_to_f32);
        let mut v_rm = vec![0f32; tn * hd];
        Blocked::new(tn, hd, sh.s, sh.t).unpack(v, &mut v_rm, bf16_to_f32);
        let o_lay = Blocked::new(tm, hd, sh.r, sh.t);
        let oacc = view::f32s_mut(F, "oacc", oacc)?;
        let mut o_rm = vec![0f32; tm * hd];
        o_lay.unpack(oacc, &mut o_rm, |x| x);

        // S = Q K^T from zero.
        let mut s_rm = vec![0f32; tm * tn];
        mm_acc(&q_rm, &kt_rm, &mut s_rm, tm, hd, tn);

        let stats = view::f32s_mut(F, "stats", stats)?;
        let (m, l) = stats.split_at_mut(tm);
        let mut p_rm = vec![0f32; tm * tn];
        for i in 0..tm {
            let query = i64::from(q0) + i as i64;
            let row = &mut s_rm[i * tn..(i + 1) * tn];
            // Scale, mask and row maximum.
            let mut rowmax = f32::NEG_INFINITY;
            for (j, x) in row.iter_mut().enumerate() {
                let key = i64::from(k0) + j as i64;
                let masked =
                    key >= i64::from(valid) || (sh.causal && key > i64::from(offset) + query);
                let y = if masked {
                    f32::NEG_INFINITY
                } else {
                    *x * sh.scale
                };
                rowmax = if y > rowmax { y } else { rowmax };
                *x = y;
            }
            // New maximum and the rescale factor of the old sums.
            let mut mnew = if m[i] > rowmax { m[i] } else { rowmax };
            let alpha = if mnew == f32::NEG_INFINITY {
                mnew = 0.0;
                1.0
            } else {
                let d = if m[i] == f32::NEG_INFINITY {
                    EXP2_FLOOR
                } else {
                    m[i] - mnew
                };
                m[i] = mnew;
                numerics::exp2(sh.arch, if d < EXP2_FLOOR { EXP2_FLOOR } else { d })
            };
            // P = 2^(S - m'), its row sum in key order, and P in bf16.
            let mut rowsum = 0.0f32;
            for (x, p) in row.iter_mut().zip(&mut p_rm[i * tn..(i + 1) * tn]) {
                let d = *x - mnew;
                let e = numerics::exp2(sh.arch, if d > EXP2_FLOOR { d } else { EXP2_FLOOR });
                rowsum += e;
                *x = e;
                *p = round_bf16(e);
            }
            l[i] = l[i] * alpha + rowsum;
            for o in &mut o_rm[i * hd..(i + 1) * hd] {
                *o *= alpha;
            }
        }
        // O += P V.
        mm_acc(&p_rm, &v_rm, &mut o_rm, tm, tn, hd);

        o_lay.pack(&o_rm, oacc, |x| x);
        Blocked::new(tm, tn, sh.r, sh.t).pack(&s_rm, view::f32s_mut(F, "s", s_buf)?, |x| x);
        Blocked::new(tm, tn, sh.r, sh.s).pack(&p_rm, view::bf16_mut(F, "p", p_buf)?, f32_to_bf16);
        Ok(())
    }

    fn cycles(&self) -> u64 {
        let sh = &self.sh;
        let (tm, tn, hd) = (sh.tm, sh.tn, sh.hd);
        let exp2 = cost::exp2_ops(sh.arch);
        let scores = tm * tn;
        // S = Q K^T and O += P V.
        let mma = cost::mac_cycles(2 * tm * tn * hd, sh.macs_per_cycle);
        // Scale + mask (load, mul, store; ~2 scalar per lane), exp2 pass (load, sub, max, exp2,
        // store; 16 scalar lanes of m' and 16 of the row sum), re-blocking (load, convert,
        // store), O rescale (load, mul, store; 16 scalar lanes of alpha).
        let vector =
            cost::vector_cycles(scores, 3 + 4 + exp2 + 3) + cost::vector_cycles(tm * hd, 3);
        let scalar = (scores * (2 + 2) + tm * hd) as u64;
        // Row statistics: a handful of scalar ops and one vector exp2 per row.
        let rows = tm as u64 * (12 + exp2);
        CALL_OVERHEAD + mma + vector + scalar + rows
    }
}

/// `attn_finish(oacc, stats, o)`.
struct Finish {
    sh: Shape,
    sig: Vec<ArgType>,
}

impl CoreFunction for Finish {
    fn signature(&self) -> &[ArgType] {
        &self.sig
    }

    fn call(&self, args: &mut [Arg<'_>]) -> Result<(), CallError> {
        const F: &str = "attn_finish";
        let b = view::bind(F, &self.sig, args)?;
        let [oacc, stats, o] = view::take(F, b.mems)?;
        let sh = &self.sh;
        let (tm, hd) = (sh.tm, sh.hd);
        let mut o_rm = vec![0f32; tm * hd];
        Blocked::new(tm, hd, sh.r, sh.t).unpack(view::f32s(F, "oacc", oacc)?, &mut o_rm, |x| x);
        let l = &view::f32s(F, "stats", stats)?[tm..];
        let o = view::bf16_mut(F, "o", o)?;
        for ((orow, src), &li) in o.chunks_exact_mut(hd).zip(o_rm.chunks_exact(hd)).zip(l) {
            let inv = if li > 0.0 { 1.0 / li } else { 0.0 };
            for (d, &x) in orow.iter_mut().zip(src) {
                *d = f32_to_bf16(x * inv);
            }
        }
        Ok(())
    }

    fn cycles(&self) -> u64 {
        let sh = &self.sh;
        let elems = sh.tm * sh.hd;
        // Per row a scalar inverse; per 16 lanes load, mul, convert plus 16 scalar lanes of
        // 1/l and 16 scalar stores.
        CALL_OVERHEAD
            + sh.tm as u64 * cost::INV_OPS
            + cost::vector_cycles(elems, 3)
            + 2 * elems as u64
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use kernel_spec::Op;

    #[test]
    fn scale_is_the_rendered_literal() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let specs = kernel_spec::load_dir(&root.join("kernel-specs")).expect("kernel-specs load");
        let mut seen = 0;
        for spec in specs
            .iter()
            .filter(|s| matches!(s.op, Op::Attention { .. }))
        {
            let Op::Attention { head_dim, .. } = spec.op else {
                unreachable!()
            };
            let r = kernel_spec::render(spec, &root.join("templates")).expect("renders");
            let cc = &r.files[1].1;
            let lit = super::scale_literal(head_dim);
            assert!(
                cc.contains(&format!("SCALE = {lit}f;")),
                "{}: SCALE is not {lit}",
                spec.name
            );
            seen += 1;
        }
        assert!(seen > 0);
    }
}
