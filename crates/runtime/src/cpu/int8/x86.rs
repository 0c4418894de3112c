//! The x86 microkernels. Each computes an `R × 16·P` i32 tile with all accumulators in
//! registers, one 4-byte activation group broadcast per row against 16 channels × 4 bytes of
//! one panel per vector load (the panel layout of [`super::pack`]).

use std::arch::x86_64::*;

use super::isa::{Acc, Operands, GROUP, PANEL};

/// Runs `$kern::<R, ...>` for the runtime row count `$rows` (1..=`$max`).
macro_rules! by_rows {
    ($rows:expr, $call:ident, [$($r:literal),*]) => {
        match $rows {
            $($r => $call!($r),)*
            r => unreachable!("{r} rows"),
        }
    };
}

#[inline(always)]
unsafe fn group(a: *const u8) -> i32 {
    (a as *const i32).read_unaligned()
}

/// AVX-512 VNNI: `vpdpbusd zmm` (u8 activations × i8 weights, 4 products per i32 lane).
///
/// # Safety
/// The CPU must have avx512f, avx512bw and avx512vnni; `op` must describe valid memory.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn avx512_vnni(rows: usize, panels: usize, op: Operands, acc: &mut Acc) {
    macro_rules! call {
        ($r:literal) => {
            if panels == 2 {
                zmm::<$r, 2>(op, acc)
            } else {
                zmm::<$r, 1>(op, acc)
            }
        };
    }
    by_rows!(rows, call, [1, 2, 3, 4, 5, 6, 7, 8])
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn zmm<const R: usize, const P: usize>(op: Operands, acc: &mut Acc) {
    let mut c = [[_mm512_setzero_si512(); P]; R];
    let (mut a, mut w) = (op.a, op.w);
    for _ in 0..op.groups {
        let mut wv = [_mm512_setzero_si512(); P];
        for (p, v) in wv.iter_mut().enumerate() {
            *v = _mm512_loadu_si512(w.add(p * op.panel_stride).cast());
        }
        for (r, cr) in c.iter_mut().enumerate() {
            let av = _mm512_set1_epi32(group(a.add(r * op.lda)));
            for (cp, &wp) in cr.iter_mut().zip(&wv) {
                *cp = _mm512_dpbusd_epi32(*cp, av, wp);
            }
        }
        a = a.add(GROUP);
        w = w.add(GROUP * PANEL);
    }
    for (cr, out) in c.iter().zip(acc.iter_mut()) {
        for (p, &v) in cr.iter().enumerate() {
            _mm512_storeu_si512(out.as_mut_ptr().add(p * PANEL).cast(), v);
        }
    }
}

/// AVX-VNNI: `vpdpbusd ymm` (VEX), two vectors per panel.
///
/// # Safety
/// The CPU must have avx2 and avxvnni; `op` must describe valid memory.
#[target_feature(enable = "avx2,avxvnni")]
pub(super) unsafe fn avx_vnni(rows: usize, op: Operands, acc: &mut Acc) {
    macro_rules! call {
        ($r:literal) => {
            ymm_vnni::<$r>(op, acc)
        };
    }
    by_rows!(rows, call, [1, 2, 3, 4, 5, 6])
}

#[target_feature(enable = "avx2,avxvnni")]
#[inline]
unsafe fn ymm_vnni<const R: usize>(op: Operands, acc: &mut Acc) {
    let mut c = [[_mm256_setzero_si256(); 2]; R];
    let (mut a, mut w) = (op.a, op.w);
    for _ in 0..op.groups {
        let w0 = _mm256_loadu_si256(w.cast());
        let w1 = _mm256_loadu_si256(w.add(32).cast());
        for (r, cr) in c.iter_mut().enumerate() {
            let av = _mm256_set1_epi32(group(a.add(r * op.lda)));
            cr[0] = _mm256_dpbusd_avx_epi32(cr[0], av, w0);
            cr[1] = _mm256_dpbusd_avx_epi32(cr[1], av, w1);
        }
        a = a.add(GROUP);
        w = w.add(GROUP * PANEL);
    }
    store_ymm(&c, acc);
}

/// AVX2: |a| × (sign(a)·w) with `vpmaddubsw` (pairs of products ≤ 2·127·127 < 2¹⁵, so the i16
/// saturation never triggers: activations are in [-127, 127]), widened by `vpmaddwd` × 1.
///
/// # Safety
/// The CPU must have avx2; `op` must describe valid memory.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn avx2(rows: usize, op: Operands, acc: &mut Acc) {
    macro_rules! call {
        ($r:literal) => {
            ymm_avx2::<$r>(op, acc)
        };
    }
    by_rows!(rows, call, [1, 2, 3, 4])
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn ymm_avx2<const R: usize>(op: Operands, acc: &mut Acc) {
    let ones = _mm256_set1_epi16(1);
    let mut c = [[_mm256_setzero_si256(); 2]; R];
    let (mut a, mut w) = (op.a, op.w);
    for _ in 0..op.groups {
        let w0 = _mm256_loadu_si256(w.cast());
        let w1 = _mm256_loadu_si256(w.add(32).cast());
        for (r, cr) in c.iter_mut().enumerate() {
            let av = _mm256_set1_epi32(group(a.add(r * op.lda)));
            let abs = _mm256_abs_epi8(av);
            let p0 = _mm256_maddubs_epi16(abs, _mm256_sign_epi8(w0, av));
            let p1 = _mm256_maddubs_epi16(abs, _mm256_sign_epi8(w1, av));
            cr[0] = _mm256_add_epi32(cr[0], _mm256_madd_epi16(p0, ones));
            cr[1] = _mm256_add_epi32(cr[1], _mm256_madd_epi16(p1, ones));
        }
        a = a.add(GROUP);
        w = w.add(GROUP * PANEL);
    }
    store_ymm(&c, acc);
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn store_ymm<const R: usize>(c: &[[__m256i; 2]; R], acc: &mut Acc) {
    for (cr, out) in c.iter().zip(acc.iter_mut()) {
        _mm256_storeu_si256(out.as_mut_ptr().cast(), cr[0]);
        _mm256_storeu_si256(out.as_mut_ptr().add(8).cast(), cr[1]);
    }
}
