//! Little-endian element access on the bytes of a host buffer (what XRT buffer objects and the
//! emulator both hold).

use crate::numerics::round_bf16_bits;

/// bf16 bits of `v`, rounded to nearest even (NaN stays NaN).
#[inline(always)]
pub(crate) fn bf16_bits(v: f32) -> u16 {
    (round_bf16_bits(v).to_bits() >> 16) as u16
}

#[inline(always)]
pub(crate) fn put_u16(dst: &mut [u8], i: usize, v: u16) {
    dst[2 * i..2 * i + 2].copy_from_slice(&v.to_le_bytes());
}

#[inline(always)]
pub(crate) fn put_bf16(dst: &mut [u8], i: usize, v: f32) {
    put_u16(dst, i, bf16_bits(v));
}

#[inline(always)]
pub(crate) fn get_bf16(src: &[u8], i: usize) -> f32 {
    f32::from_bits(u32::from(u16::from_le_bytes([src[2 * i], src[2 * i + 1]])) << 16)
}

#[inline(always)]
pub(crate) fn get_f32(src: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([src[4 * i], src[4 * i + 1], src[4 * i + 2], src[4 * i + 3]])
}

#[inline(always)]
pub(crate) fn put_i8(dst: &mut [u8], i: usize, v: i8) {
    dst[i] = v as u8;
}

#[inline(always)]
pub(crate) fn get_i8(src: &[u8], i: usize) -> i8 {
    src[i] as i8
}

/// Writes `src` as bf16 from element `at` on.
pub(crate) fn put_bf16_run(dst: &mut [u8], at: usize, src: &[f32]) {
    for (d, &v) in dst[2 * at..2 * (at + src.len())]
        .chunks_exact_mut(2)
        .zip(src)
    {
        d.copy_from_slice(&bf16_bits(v).to_le_bytes());
    }
}

/// Writes `src` as f32 from element `at` on.
pub(crate) fn put_f32_run(dst: &mut [u8], at: usize, src: &[f32]) {
    for (d, &v) in dst[4 * at..4 * (at + src.len())]
        .chunks_exact_mut(4)
        .zip(src)
    {
        d.copy_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_round_trip_and_rounding() {
        let mut b = [0u8; 8];
        put_bf16(&mut b, 1, 1.0 + 2f32.powi(-8)); // a tie: rounds to even (1.0)
        assert_eq!(get_bf16(&b, 1), 1.0);
        put_bf16(&mut b, 2, -3.5);
        assert_eq!(&b[4..6], &[0x60, 0xc0]); // 0xc060, little-endian
        assert_eq!(get_bf16(&b, 2), -3.5);
        put_bf16_run(&mut b, 0, &[0.5, 2.0]);
        assert_eq!((get_bf16(&b, 0), get_bf16(&b, 1)), (0.5, 2.0));
    }

    #[test]
    fn f32_and_i8_round_trip() {
        let mut b = [0u8; 8];
        put_f32_run(&mut b, 0, &[3.0, -1.25]);
        assert_eq!((get_f32(&b, 0), get_f32(&b, 1)), (3.0, -1.25));
        put_i8(&mut b, 3, -127);
        assert_eq!(get_i8(&b, 3), -127);
    }
}
