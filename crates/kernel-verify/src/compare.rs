//! Comparison of the CPU backend's result with the MLIR reference.

use kernel_spec::{Dtype, KernelSpec, Op};

use crate::inputs::Case;
use crate::reference::rounds_output;

/// How close the CPU result must be to the reference.
///
/// Both sides read bit-identical bf16/int8 inputs and round at the same places, so what is left
/// is (a) f32 accumulation order (blocked GEMM vs the reference's sequential loop: about
/// √k·2⁻²⁴ of the output's scale, < 1e-5 for k ≤ 2048), (b) exp/erf/rsqrt implementations
/// (runtime polynomials vs libm/LLVM, a few f32 ulps), and (c) rare flips of a bf16 rounding of
/// an intermediate (FFN hidden layer, attention probabilities) that (a)/(b) pushed across a
/// rounding boundary, each moving an output by about 2⁻⁸ of one product term. `atol`/`rtol`
/// bound (a)–(c) with a ~10× margin; they are relative to the output's RMS so that they mean
/// the same for every shape.
///
/// Where the kernel's output itself is quantised (bf16, or int8 with `requantize_output`), the
/// tiny differences above flip the final rounding of a few elements by one quantum, and a flip
/// of an intermediate rounding (an attention probability of a peaked row: 2⁻⁸·p·|v| can reach
/// an output ulp) can add one more; such elements may exceed the tight bound by at most
/// `max_quanta` quanta plus `flip_atol`, and only `max_flip_fraction` of the elements may.
/// `flip_atol` is non-zero for attention only: a flipped probability moves an output by up to
/// one bf16 ulp of p (≤ 2⁻⁸ for p < 1) times |v|, which for the small outputs of a flat softmax
/// is several output ulps. A kernel that misses a rounding step (e.g. reads f32 instead of bf16 inputs) moves
/// outputs by ~1e-3 of their scale and fails the tight bound almost everywhere.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    /// Absolute tolerance as a fraction of the reference's RMS.
    pub atol_rms: f32,
    pub rtol: f32,
    pub quantum: Quantum,
    pub max_quanta: f32,
    /// Extra absolute allowance of flipped elements (see above).
    pub flip_atol: f32,
    pub max_flip_fraction: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantum {
    /// f32 output: no final rounding.
    None,
    /// bf16 output: one bf16 ulp of the value.
    Bf16,
    /// int8 requantised output: one step of the per-tensor output scale (max|y|/127).
    Int8Step,
}

impl Tolerance {
    /// The tolerance of `spec` on the inputs of `case`.
    pub fn for_case(spec: &KernelSpec, case: &Case) -> Tolerance {
        let mut t = Tolerance::for_spec(spec);
        if let (Op::Attention { .. }, Dtype::Bf16) = (&spec.op, spec.dtype) {
            let vmax = case
                .input("v")
                .as_f32()
                .iter()
                .fold(0.0f32, |m, v| m.max(v.abs()));
            t.flip_atol = 2f32.powi(-8) * vmax;
        }
        t
    }

    /// The tolerance of the emulated design of `spec` on `case`: as [`Tolerance::for_case`],
    /// except where the kernel evaluates exp (GELU, softmax). There the core-function models
    /// follow the NPU, whose exp is accurate to bf16 only (relative error up to 2⁻⁹, where the
    /// reference's libm exp is exact to f32), so most outputs move by up to about 2⁻⁸ of their
    /// scale: GELU's erf term by 2⁻⁹·|x|, a softmax weight by 2⁻⁹ of itself, and an FFN's hidden
    /// layer passes its share on through W2. Those entries get 2⁻⁷ of the RMS and of the value,
    /// an extra 2⁻⁷·max|v| for attention outputs, and no limit on the share of elements that
    /// use the extra room; a missing rounding or a wrong layout still moves outputs by far more.
    pub fn for_emulated(spec: &KernelSpec, case: &Case) -> Tolerance {
        let mut t = Tolerance::for_case(spec, case);
        if spec.op.needs_exp() {
            let room = 2f32.powi(-7);
            t.atol_rms = t.atol_rms.max(room);
            t.rtol = t.rtol.max(room);
            t.max_flip_fraction = 1.0;
            if let Op::Attention { .. } = spec.op {
                let vmax = case
                    .input("v")
                    .as_f32()
                    .iter()
                    .fold(0.0f32, |m, v| m.max(v.abs()));
                t.flip_atol += room * vmax;
            }
        }
        t
    }

    /// The tolerance of `spec` without the input-dependent parts.
    pub fn for_spec(spec: &KernelSpec) -> Tolerance {
        let quantum = match (&spec.op, spec.dtype) {
            (Op::Matmul { quant: Some(q), .. }, Dtype::Int8) if q.requantize_output => {
                Quantum::Int8Step
            }
            _ if rounds_output(spec) => Quantum::Bf16,
            _ => Quantum::None,
        };
        let (atol_rms, rtol) = match spec.dtype {
            // f32 kernels: only accumulation order and libm-vs-polynomial differences.
            Dtype::F32 => (2e-6, 2e-6),
            // bf16/int8: adds the rare intermediate bf16 flips (c) above.
            Dtype::Bf16 | Dtype::Int8 => (1e-4, 1e-4),
        };
        Tolerance {
            atol_rms,
            rtol,
            quantum,
            // int8: both sides quantise bit-identically, only the final requantisation flips.
            max_quanta: if quantum == Quantum::Int8Step {
                1.0
            } else {
                2.0
            },
            flip_atol: 0.0,
            max_flip_fraction: 0.01,
        }
    }
}

/// Stores `cpu` the way the NPU kernel writes its output: bf16 (round to nearest even) or
/// requantised int8 (per-tensor scale max|y|/127, dequantised). Returns how many values this
/// changed: a CPU backend that already rounds like the kernel changes none.
///
/// Comparing stored values means the verifier checks what the NPU would hand back; inputs and
/// intermediates must still round exactly like the kernel, or many outputs land on a different
/// bf16/int8 step and the flip limit fails the entry.
pub fn store_as_kernel(quantum: Quantum, cpu: &mut [f32]) -> usize {
    let before: Vec<u32> = cpu.iter().map(|v| v.to_bits()).collect();
    match quantum {
        Quantum::None => return 0,
        Quantum::Bf16 => {
            for v in cpu.iter_mut() {
                *v = npu_runtime::numerics::round_bf16(*v);
            }
        }
        Quantum::Int8Step => npu_runtime::numerics::fake_quant_inplace(cpu),
    }
    cpu.iter()
        .zip(before)
        .filter(|(v, b)| v.to_bits() != *b)
        .count()
}

/// The outcome of one comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub max_abs_err: f32,
    /// max |c - r| / |r| over elements with |r| above 1e-3 of the RMS (relative error of values
    /// near zero says nothing).
    pub max_rel_err: f32,
    pub rms: f32,
    /// Elements outside the tight bound but within one output quantum of it.
    pub flips: usize,
    /// Elements outside every bound.
    pub failures: usize,
    pub len: usize,
    /// Elements bit-identical to the reference.
    pub exact: usize,
    /// The worst element (index, cpu, reference), relative to its bound.
    pub worst: Option<(usize, f32, f32)>,
    pub passed: bool,
    pub reason: Option<String>,
}

fn bf16_ulp(v: f32) -> f32 {
    let a = v.abs();
    if !a.is_normal() {
        // Subnormal or zero: the smallest bf16 step.
        return f32::from_bits(1 << 16);
    }
    let exp = (a.to_bits() >> 23) & 0xff;
    // ulp of bf16 = 2^(e - 127 - 7)
    f32::from_bits(((exp.saturating_sub(7)) << 23).max(1 << 16))
}

pub fn compare(cpu: &[f32], reference: &[f32], tol: Tolerance) -> Comparison {
    let n = reference.len();
    if cpu.len() != n {
        return Comparison {
            max_abs_err: f32::INFINITY,
            max_rel_err: f32::INFINITY,
            rms: 0.0,
            flips: 0,
            failures: n,
            len: n,
            exact: 0,
            worst: None,
            passed: false,
            reason: Some(format!(
                "CPU result has {} elements, reference {n}",
                cpu.len()
            )),
        };
    }
    let rms = (reference
        .iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum::<f64>()
        / n.max(1) as f64)
        .sqrt() as f32;
    let atol = tol.atol_rms * rms;
    let step = match tol.quantum {
        Quantum::Int8Step => reference.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0,
        _ => 0.0,
    };
    let (mut max_abs, mut max_rel, mut flips, mut failures) = (0.0f32, 0.0f32, 0usize, 0usize);
    let mut worst: Option<(usize, f32, f32)> = None;
    let mut worst_ratio = -1.0f32;
    let mut non_finite = 0usize;
    for (i, (&c, &r)) in cpu.iter().zip(reference).enumerate() {
        if !c.is_finite() || !r.is_finite() {
            if c.to_bits() != r.to_bits() {
                non_finite += 1;
                failures += 1;
            }
            continue;
        }
        let d = (c - r).abs();
        max_abs = max_abs.max(d);
        if r.abs() > 1e-3 * rms {
            max_rel = max_rel.max(d / r.abs());
        }
        let tight = atol + tol.rtol * r.abs();
        let ratio = d / tight.max(f32::MIN_POSITIVE);
        if ratio > worst_ratio {
            worst_ratio = ratio;
            worst = Some((i, c, r));
        }
        if d <= tight {
            continue;
        }
        let quantum = match tol.quantum {
            Quantum::None => 0.0,
            Quantum::Bf16 => bf16_ulp(r.abs().max(c.abs())),
            Quantum::Int8Step => step,
        };
        if quantum > 0.0 && d <= tight + tol.max_quanta * quantum + tol.flip_atol {
            flips += 1;
        } else {
            failures += 1;
        }
    }
    let allowed_flips = (tol.max_flip_fraction * n as f64).floor() as usize;
    let reason = if non_finite > 0 {
        Some(format!(
            "{non_finite} elements are NaN/inf on one side only"
        ))
    } else if failures > 0 {
        Some(format!(
            "{failures} of {n} elements outside |cpu - ref| <= {:.1e}·rms + {:.1e}·|ref|{}",
            tol.atol_rms,
            tol.rtol,
            if tol.quantum == Quantum::None {
                String::new()
            } else {
                format!(
                    " (+ {} output quanta + {:.1e})",
                    tol.max_quanta, tol.flip_atol
                )
            }
        ))
    } else if flips > allowed_flips {
        Some(format!(
            "{flips} of {n} elements differ by an output rounding step (at most {allowed_flips} allowed): the CPU rounds differently from the kernel"
        ))
    } else {
        None
    };
    Comparison {
        max_abs_err: max_abs,
        max_rel_err: max_rel,
        rms,
        flips,
        failures,
        len: n,
        exact: cpu
            .iter()
            .zip(reference)
            .filter(|(c, r)| c.to_bits() == r.to_bits())
            .count(),
        worst,
        passed: reason.is_none(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(q: Quantum) -> Tolerance {
        Tolerance {
            atol_rms: 1e-4,
            rtol: 1e-4,
            quantum: q,
            max_quanta: 1.0,
            flip_atol: 0.0,
            max_flip_fraction: 0.01,
        }
    }

    #[test]
    fn bf16_ulp_values() {
        assert_eq!(bf16_ulp(1.0), 2f32.powi(-7));
        assert_eq!(bf16_ulp(1.5), 2f32.powi(-7));
        assert_eq!(bf16_ulp(-3.0), 2f32.powi(-6));
        assert_eq!(bf16_ulp(0.0), f32::from_bits(1 << 16));
    }

    #[test]
    fn equal_passes_and_perturbed_fails() {
        let r: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        assert!(compare(&r, &r, tol(Quantum::None)).passed);
        let mut c = r.clone();
        c[17] += 0.01;
        let cmp = compare(&c, &r, tol(Quantum::None));
        assert!(!cmp.passed);
        assert_eq!(cmp.failures, 1);
        assert_eq!(cmp.worst.unwrap().0, 17);
    }

    #[test]
    fn few_flips_pass_many_fail() {
        let r: Vec<f32> = (0..1000).map(|i| 1.0 + i as f32 / 1000.0).collect();
        let mut c = r.clone();
        for v in c.iter_mut().take(5) {
            *v += 2f32.powi(-7);
        }
        assert!(compare(&c, &r, tol(Quantum::Bf16)).passed);
        assert!(!compare(&c, &r, tol(Quantum::None)).passed);
        for v in c.iter_mut().take(50) {
            *v = r[0] + 2f32.powi(-7);
        }
        let cmp = compare(&c, &r, tol(Quantum::Bf16));
        assert!(!cmp.passed, "{cmp:?}");
    }

    #[test]
    fn nan_fails() {
        let r = vec![1.0f32; 10];
        let mut c = r.clone();
        c[3] = f32::NAN;
        assert!(!compare(&c, &r, tol(Quantum::Bf16)).passed);
    }
}
