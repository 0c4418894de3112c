//! aie::mmul block layouts and the blocked matrix product of the kernels.
//!
//! A `rows x cols` matrix in `br x bc` blocks is stored block-row-major (block (i, j) at
//! `(i * cols/bc + j) * br*bc`), each block row-major: this is the A layout (R x S blocks), the
//! B layout (S x T) and the accumulator layout (R x T) of `aie::mmul<R, S, T>`.
//!
//! The product runs on row-major copies (decoded once per call) so that the innermost loop is
//! contiguous and vectorises; every output element still receives its products one at a time,
//! in increasing k, as the 2x2-unrolled mmul loops of the C++ feed them (the order inside one
//! hardware `mac` is not observable and is taken to be the natural one).

/// The block layout of one operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blocked {
    pub rows: usize,
    pub cols: usize,
    pub br: usize,
    pub bc: usize,
}

impl Blocked {
    pub fn new(rows: usize, cols: usize, br: usize, bc: usize) -> Blocked {
        debug_assert!(br > 0 && bc > 0 && rows.is_multiple_of(br) && cols.is_multiple_of(bc));
        Blocked { rows, cols, br, bc }
    }

    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Index of element (r, c).
    #[inline]
    pub fn at(&self, r: usize, c: usize) -> usize {
        ((r / self.br) * (self.cols / self.bc) + c / self.bc) * (self.br * self.bc)
            + (r % self.br) * self.bc
            + c % self.bc
    }

    /// Row-major copy of a blocked matrix, converting each element.
    pub fn unpack<T: Copy, U>(&self, blocked: &[T], dst: &mut [U], conv: impl Fn(T) -> U) {
        match self.bc {
            4 => self.copy::<4, T, U>(blocked, dst, conv, true),
            8 => self.copy::<8, T, U>(blocked, dst, conv, true),
            _ => self.copy::<1, T, U>(blocked, dst, conv, true),
        }
    }

    /// Blocked copy of a row-major matrix, converting each element.
    pub fn pack<T: Copy, U>(&self, rm: &[T], blocked: &mut [U], conv: impl Fn(T) -> U) {
        match self.bc {
            4 => self.copy::<4, T, U>(rm, blocked, conv, false),
            8 => self.copy::<8, T, U>(rm, blocked, conv, false),
            _ => self.copy::<1, T, U>(rm, blocked, conv, false),
        }
    }

    /// Copies runs of `W` elements (`W` divides `bc`; a constant so that the runs unroll)
    /// between the blocked (`to_rm`: from) and the row-major layout.
    #[inline(always)]
    fn copy<const W: usize, T: Copy, U>(
        &self,
        src: &[T],
        dst: &mut [U],
        conv: impl Fn(T) -> U,
        to_rm: bool,
    ) {
        let (br, bc) = (self.br, self.bc);
        let nbc = self.cols / bc;
        for bi in 0..self.rows / br {
            for bj in 0..nbc {
                let block = (bi * nbc + bj) * br * bc;
                for r in 0..br {
                    let b0 = block + r * bc;
                    let r0 = (bi * br + r) * self.cols + bj * bc;
                    for w in (0..bc).step_by(W) {
                        let (s0, d0) = if to_rm {
                            (b0 + w, r0 + w)
                        } else {
                            (r0 + w, b0 + w)
                        };
                        let s = &src[s0..s0 + W];
                        let d = &mut dst[d0..d0 + W];
                        for (d, &s) in d.iter_mut().zip(s) {
                            *d = conv(s);
                        }
                    }
                }
            }
        }
    }
}

/// An accumulator element: `acc + a * b`, one rounding per operation (f32) or exact (i32).
pub(crate) trait Mac: Copy + Default {
    fn mac(self, a: Self, b: Self) -> Self;
}

impl Mac for f32 {
    #[inline(always)]
    fn mac(self, a: f32, b: f32) -> f32 {
        self + a * b
    }
}

impl Mac for i32 {
    // int8 products summed in i32: exact for every reduction the specs allow (|sum| < 2^31).
    #[inline(always)]
    fn mac(self, a: i32, b: i32) -> i32 {
        self.wrapping_add(a.wrapping_mul(b))
    }
}

/// `c[m x n] += a[m x k] · b[k x n]` on row-major slices; each `c[i][j]` receives
/// `a[i][kk] * b[kk][j]` for kk = 0, 1, ... in turn. Compiled for AVX2 too where the CPU has
/// it (the same operations in the same order: Rust never fuses the multiply and the add).
pub(crate) fn mm_acc<T: Mac>(a: &[T], b: &[T], c: &mut [T], m: usize, k: usize, n: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<T: Mac>(a: &[T], b: &[T], c: &mut [T], m: usize, k: usize, n: usize) {
            mm_acc_generic(a, b, c, m, k, n)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports the feature `avx2` was compiled for.
            return unsafe { avx2(a, b, c, m, k, n) };
        }
    }
    mm_acc_generic(a, b, c, m, k, n)
}

#[inline(always)]
fn mm_acc_generic<T: Mac>(a: &[T], b: &[T], c: &mut [T], m: usize, k: usize, n: usize) {
    debug_assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
    let mut i = 0;
    while i + 4 <= m {
        rows::<T, 4>(a, b, c, i, k, n);
        i += 4;
    }
    while i < m {
        rows::<T, 1>(a, b, c, i, k, n);
        i += 1;
    }
}

/// Rows `i0..i0 + R` of the product, in strips of 16 and 8 columns.
#[inline(always)]
fn rows<T: Mac, const R: usize>(a: &[T], b: &[T], c: &mut [T], i0: usize, k: usize, n: usize) {
    let mut j = 0;
    while j + 16 <= n {
        block::<T, R, 16>(a, b, c, i0, j, k, n);
        j += 16;
    }
    while j + 8 <= n {
        block::<T, R, 8>(a, b, c, i0, j, k, n);
        j += 8;
    }
    while j < n {
        block::<T, R, 1>(a, b, c, i0, j, k, n);
        j += 1;
    }
}

/// An R x W block of C kept in registers over the whole reduction (each B row loaded once
/// for R rows of A).
#[inline(always)]
fn block<T: Mac, const R: usize, const W: usize>(
    a: &[T],
    b: &[T],
    c: &mut [T],
    i0: usize,
    j: usize,
    k: usize,
    n: usize,
) {
    let mut acc = [[T::default(); W]; R];
    for (r, row) in acc.iter_mut().enumerate() {
        row.copy_from_slice(&c[(i0 + r) * n + j..(i0 + r) * n + j + W]);
    }
    let arows: [&[T]; R] = std::array::from_fn(|r| &a[(i0 + r) * k..(i0 + r + 1) * k]);
    for kk in 0..k {
        let brow = &b[kk * n + j..kk * n + j + W];
        for (row, arow) in acc.iter_mut().zip(&arows) {
            let av = arow[kk];
            for (x, &bv) in row.iter_mut().zip(brow) {
                *x = x.mac(av, bv);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        c[(i0 + r) * n + j..(i0 + r) * n + j + W].copy_from_slice(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_index_and_round_trip() {
        let lay = Blocked::new(8, 16, 4, 8);
        // Element (5, 9): block (1, 1) = block 3, row 1, column 1 in the block.
        assert_eq!(lay.at(5, 9), 3 * 32 + 8 + 1);
        let rm: Vec<u32> = (0..128).collect();
        let mut blocked = vec![0u32; 128];
        lay.pack(&rm, &mut blocked, |x| x);
        for r in 0..8 {
            for c in 0..16 {
                assert_eq!(blocked[lay.at(r, c)], (r * 16 + c) as u32);
            }
        }
        let mut back = vec![0u32; 128];
        lay.unpack(&blocked, &mut back, |x| x);
        assert_eq!(back, rm);
    }

    #[test]
    fn product_sums_in_k_order() {
        // Row [1e8, 1, -1e8] · column [1, 1, 1]: in k order (1e8 + 1) - 1e8 = 0 in f32.
        let a = [1e8f32, 1.0, -1e8];
        let b = [1.0f32; 3 * 20];
        let mut c = [0.0f32; 20];
        mm_acc(&a, &b, &mut c, 1, 3, 20);
        assert!(c.iter().all(|&x| x == 0.0));
        let mut c = [5i32; 20];
        mm_acc(&[2, 3, 4], &[1i32; 60], &mut c, 1, 3, 20);
        assert!(c.iter().all(|&x| x == 14));
    }
}
