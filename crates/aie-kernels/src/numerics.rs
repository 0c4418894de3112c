//! Scalar numerics shared by the models: bf16 conversions, the `vm::exp2` and `vm::gelu` of
//! `templates/common/vec_math.h.jinja`, the AIE API's float `reduce_add`, and int8
//! requantisation.
//!
//! Every f32 operation of the C++ is one f32 operation here, in the same order (Rust never
//! contracts `a * b + c` into a fused multiply-add). What the hardware defines and these models
//! cannot reproduce bit for bit:
//! - **exp2.** aie2 (npu1) has no exp unit: `vm::exp2` computes `y = x · 0.69314718f`, rounds
//!   it to bf16 and reads mlir-aie's `getExpBf16` lookup tables (the input quantised to 1/256 in
//!   Q8.8, the result the product of two bf16 table entries). aie2p (npu2) rounds x to bf16 and
//!   uses the native bf16 `exp2`. Both are documented as "accurate to bf16", and that is the
//!   model: aie2 `bf16(exp(bf16(x · 0.69314718f)))`, aie2p `bf16(2^bf16(x))`, each correctly
//!   rounded from f64.
//! - **aie::inv** (GELU, attention's `1/l`) is an exact f32 division here; the AIE API computes
//!   it with a magic-constant estimate and Newton steps (a few f32 ulp).
//! - **aie::invsqrt** (LayerNorm) is 1/sqrt in f64 rounded to f32 here; aie2's AIE API
//!   uses a one-step approximation (relative error up to about 6.5e-4, a twelfth of a bf16
//!   ulp: it can change the rounding of a few percent of bf16 outputs), aie2p a scalar
//!   intrinsic of unstated accuracy.
//! - **f32 arithmetic.** aie2 has no native f32 vector multiplier (the compiler emulates it with
//!   bf16 products) and may flush subnormals; the models use IEEE f32 with subnormals.

use std::sync::OnceLock;

/// The AIE architecture of a device (`Limits::arch`): which exp2 the kernels use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// npu1: exp through mlir-aie's bf16 lookup tables.
    Aie2,
    /// npu2: native bf16 exp2.
    Aie2p,
}

impl Arch {
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "aie2" => Some(Arch::Aie2),
            "aie2p" => Some(Arch::Aie2p),
            _ => None,
        }
    }
}

/// bf16 -> f32 is exact.
#[inline(always)]
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// f32 -> bf16, round to nearest, ties to even (the `conv_even` mode every kernel sets);
/// overflow rounds to infinity, NaN stays a quiet NaN.
#[inline(always)]
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if (b & 0x7fff_ffff) > 0x7f80_0000 {
        return ((b >> 16) as u16) | 0x0040;
    }
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// `x` rounded to bf16 and widened back.
#[inline(always)]
pub fn round_bf16(x: f32) -> f32 {
    bf16_to_f32(f32_to_bf16(x))
}

/// f64 -> bf16 with a single correct rounding (ties to even): round to odd into f32 first
/// (16 spare bits), then to nearest-even into bf16.
pub fn f64_to_bf16(x: f64) -> u16 {
    if x.is_nan() {
        return f32_to_bf16(f32::NAN);
    }
    let f = x as f32;
    let fb = f.to_bits();
    let odd = if f64::from(f) == x {
        fb
    } else {
        // Truncate toward zero (bits - 1 lowers the magnitude), then set the sticky bit.
        let t = if f64::from(f).abs() > x.abs() {
            fb - 1
        } else {
            fb
        };
        t | 1
    };
    f32_to_bf16(f32::from_bits(odd))
}

/// `vm::exp2`: 2^x "accurate to bf16" (see the module doc for what the hardware does).
#[inline]
pub fn exp2(arch: Arch, x: f32) -> f32 {
    // Both models are functions of one bf16 value (aie2: y = bf16(x·ln2), aie2p: bf16(x)):
    // look them up, 65536 entries each, built once.
    static AIE2: OnceLock<Vec<u16>> = OnceLock::new();
    static AIE2P: OnceLock<Vec<u16>> = OnceLock::new();
    let (table, arg) = match arch {
        Arch::Aie2 => (&AIE2, x * LN2_AIE2),
        Arch::Aie2p => (&AIE2P, x),
    };
    let table = table.get_or_init(|| {
        (0..=u16::MAX)
            .map(|b| {
                let v = f64::from(bf16_to_f32(b));
                f64_to_bf16(match arch {
                    Arch::Aie2 => v.exp(),
                    Arch::Aie2p => v.exp2(),
                })
            })
            .collect()
    });
    bf16_to_f32(table[usize::from(f32_to_bf16(arg))])
}

/// ln 2 as `vm::exp2` writes it for aie2 (the C++ literal, not `std`'s constant).
#[allow(clippy::approx_constant, clippy::excessive_precision)]
const LN2_AIE2: f32 = 0.693_147_18;

/// The exp2 model computed directly: aie2 `bf16(exp(bf16(x · 0.69314718f)))`, aie2p
/// `bf16(2^bf16(x))`, each rounded once from f64.
pub fn exp2_exact(arch: Arch, x: f32) -> f32 {
    match arch {
        Arch::Aie2 => {
            let y = round_bf16(x * LN2_AIE2);
            bf16_to_f32(f64_to_bf16(f64::from(y).exp()))
        }
        Arch::Aie2p => bf16_to_f32(f64_to_bf16(f64::from(round_bf16(x)).exp2())),
    }
}

/// `vm::gelu`: 0.5 x (1 + erf(x / sqrt 2)), erf by Abramowitz & Stegun 7.1.26, op by op in f32
/// as the C++ writes it (`aie::inv` as an exact division).
// The literals are the C++'s, spelled the same so that they round to the same f32.
#[allow(clippy::approx_constant, clippy::excessive_precision)]
#[inline]
pub fn gelu(arch: Arch, x: f32) -> f32 {
    let u = x * 0.70710678_f32;
    let z = u.abs();
    let t = 1.0_f32 / (1.0_f32 + z * 0.3275911_f32);
    let mut poly = 1.061405429_f32;
    poly = poly * t + -1.453152027_f32;
    poly = poly * t + 1.421413741_f32;
    poly = poly * t + -0.284496736_f32;
    poly = poly * t + 0.254829592_f32;
    poly *= t;
    let e = exp2(arch, (z * z) * -1.44269504_f32);
    let erf_abs = 1.0_f32 - poly * e;
    let erf = if u < 0.0 { -erf_abs } else { erf_abs };
    (x * 0.5_f32) * (1.0_f32 + erf)
}

/// `aie::reduce_add` of a 16-lane f32 vector: halves added pairwise (lanes i and i+8, then
/// i and i+4, i and i+2, 0 and 1), as the AIE API's accumulator reduction does on aie2 and
/// aie2p.
#[inline]
pub fn reduce_add16(v: &[f32; 16]) -> f32 {
    let mut a = *v;
    let mut half = 8;
    while half > 0 {
        for i in 0..half {
            a[i] += a[i + half];
        }
        half /= 2;
    }
    a[0]
}

/// `round(v · inv_out)` saturated to int8, as the epilogue writes it: `aie::to_fixed<int32>`
/// rounds to nearest, ties to even (the AIE API's float2fix emulation; it ignores the rounding
/// mode), then the shift-0 SRS to int8 saturates to [-128, 127].
///
/// Note: crates/runtime/src/numerics.rs quantises with a clamp to [-127, 127]; the kernel C++
/// can produce -128 (saturation mode `saturate` is symmetric only in `symmetric` mode). NaN has
/// no defined result on the device; the model gives 0.
#[inline]
pub fn requantize_i8(v: f32, inv_out: f32) -> i8 {
    let q = v * inv_out;
    if q.is_nan() {
        0
    } else {
        q.round_ties_even().clamp(-128.0, 127.0) as i8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_is_nearest_even() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
        assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
        assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 1.0 + 1.0 / 64.0);
        assert_eq!(round_bf16(f32::MAX), f32::INFINITY);
        assert!(round_bf16(f32::NAN).is_nan());
        assert_eq!(round_bf16(-0.0).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn f64_to_bf16_rounds_once() {
        // Just above the tie between 1 and 1 + 2^-7: an f32 detour would round to the tie
        // and then to even (1.0); the correct result is 1 + 2^-7.
        let x = 1.0 + 1.0 / 256.0 + 1e-12;
        assert_eq!(bf16_to_f32(f64_to_bf16(x)), 1.0 + 1.0 / 128.0);
        assert_eq!(bf16_to_f32(f64_to_bf16(-x)), -(1.0 + 1.0 / 128.0));
        assert_eq!(bf16_to_f32(f64_to_bf16(1.0 + 1.0 / 256.0)), 1.0);
        assert_eq!(bf16_to_f32(f64_to_bf16(1e300)), f32::INFINITY);
        assert_eq!(bf16_to_f32(f64_to_bf16(1e-300)), 0.0);
    }

    #[test]
    fn exp2_is_accurate_to_bf16() {
        for arch in [Arch::Aie2, Arch::Aie2p] {
            for i in -800..=200 {
                let x = i as f32 / 10.0;
                let got = exp2(arch, x) as f64;
                let want = (x as f64).exp2();
                // bf16 keeps 8 significant bits; the aie2 argument is rounded to bf16 first
                // (|y| < 64: absolute error up to 2^-3 in y for the largest inputs).
                let tol = match arch {
                    Arch::Aie2p => want * (2f64.powi(-8) + (x.abs() as f64 + 1.0) * 2f64.powi(-8)),
                    Arch::Aie2 => {
                        want * (2f64.powi(-8) + (x.abs() as f64 * 0.7 + 1.0) * 2f64.powi(-8))
                    }
                };
                assert!(
                    (got - want).abs() <= tol,
                    "{arch:?} exp2({x}) = {got}, want {want}"
                );
                assert_eq!(round_bf16(got as f32) as f64, got, "result is a bf16 value");
            }
            assert_eq!(exp2(arch, 0.0), 1.0);
            assert_eq!(exp2(arch, f32::NEG_INFINITY), 0.0);
        }
        // The lookup is the direct computation (aie2: x·ln2 is rounded to bf16 in both).
        let mut rng = 0x1234_5678u32;
        for _ in 0..100_000 {
            rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let x = f32::from_bits(rng) % 200.0;
            for arch in [Arch::Aie2, Arch::Aie2p] {
                assert_eq!(
                    exp2(arch, x).to_bits(),
                    exp2_exact(arch, x).to_bits(),
                    "{arch:?} {x}"
                );
            }
        }
        // aie2p: integer powers are exact.
        assert_eq!(exp2(Arch::Aie2p, -3.0), 0.125);
    }

    #[test]
    fn gelu_matches_the_erf_form() {
        for arch in [Arch::Aie2, Arch::Aie2p] {
            for i in -600..=600 {
                let x = i as f32 / 100.0;
                let xd = x as f64;
                let want = 0.5 * xd * (1.0 + erf_f64(xd / std::f64::consts::SQRT_2));
                let got = gelu(arch, x) as f64;
                // The bf16 exp2 carries a relative error of about 2^-8 into poly * e.
                assert!(
                    (got - want).abs() <= 5e-3 * xd.abs().max(0.05),
                    "{arch:?} gelu({x}) = {got}, want {want}"
                );
            }
            assert_eq!(gelu(arch, 0.0), 0.0);
            assert_eq!(gelu(arch, 50.0), 50.0);
            assert_eq!(gelu(arch, -50.0), 0.0);
        }
    }

    // erf by its Taylor series (|x| < 3) or continued fraction (larger), good to ~1e-12.
    fn erf_f64(x: f64) -> f64 {
        let a = x.abs();
        let r = if a < 3.0 {
            let mut term = a;
            let mut sum = a;
            let mut n = 0.0;
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = (k as f64 / 2.0) / (a + f);
            }
            1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * (a + f))
        };
        r.copysign(x)
    }

    #[test]
    fn reduce_add_is_the_halving_tree() {
        let mut v = [0.0f32; 16];
        v[0] = 1.0;
        v[8] = 1e8;
        v[4] = -1e8;
        // (v0 + v8) + (v4 + v12) = (1 + 1e8) + (-1e8) = 0 in f32 (1 is absorbed first).
        assert_eq!(reduce_add16(&v), 0.0);
        let w: [f32; 16] = std::array::from_fn(|i| i as f32);
        assert_eq!(reduce_add16(&w), 120.0);
    }

    #[test]
    fn requantize_rounds_to_even_and_saturates_to_int8() {
        assert_eq!(requantize_i8(2.5, 1.0), 2);
        assert_eq!(requantize_i8(3.5, 1.0), 4);
        assert_eq!(requantize_i8(-2.5, 1.0), -2);
        assert_eq!(requantize_i8(-1000.0, 1.0), -128);
        assert_eq!(requantize_i8(1000.0, 1.0), 127);
        assert_eq!(requantize_i8(f32::NAN, 1.0), 0);
    }
}
