//! The CPU backend: gemm-based kernels with fused epilogues, rayon parallelism and thread-local
//! scratch buffers, in f32 or NPU-exact numerics.

pub(crate) mod attention;
pub(crate) mod gemv;
pub(crate) mod int8;
pub(crate) mod matmul;
pub(crate) mod norm;

use std::cell::RefCell;

/// Buffers kept per thread so the hot path does not allocate. A stack of buffers rather than
/// one, so that nested users (a rayon worker that steals another task while holding one) each
/// get their own.
struct Pool<T> {
    free: RefCell<Vec<Vec<T>>>,
}

thread_local! {
    static F32_POOL: Pool<f32> = const { Pool { free: RefCell::new(Vec::new()) } };
    static F64_POOL: Pool<f64> = const { Pool { free: RefCell::new(Vec::new()) } };
}

const MAX_POOLED: usize = 8;

fn with_pool<T: Copy + Default, R>(
    pool: &'static std::thread::LocalKey<Pool<T>>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    let mut buf = pool.with(|p| p.free.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, T::default());
    }
    let r = f(&mut buf[..len]);
    pool.with(|p| {
        let mut free = p.free.borrow_mut();
        if free.len() < MAX_POOLED {
            free.push(buf);
        }
    });
    r
}

/// A reusable f32 scratch buffer of `len` elements (contents unspecified).
pub(crate) fn with_f32<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_pool(&F32_POOL, len, f)
}

/// A reusable f64 scratch buffer of `len` elements (contents unspecified).
pub(crate) fn with_f64<R>(len: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    with_pool(&F64_POOL, len, f)
}

/// A raw pointer that tasks writing disjoint regions of one output may share.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr<T>(pub *mut T);
// SAFETY: users only write disjoint index ranges from different threads.
unsafe impl<T> Send for SyncPtr<T> {}
unsafe impl<T> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// A method (not field access) so closures capture the whole `Sync` wrapper.
    #[inline(always)]
    pub(crate) fn ptr(self) -> *mut T {
        self.0
    }
}

/// `0..len` split into about `parts` contiguous blocks whose sizes are multiples of `align`
/// (except the last) and at least `min`; computed on the fly so the hot path allocates nothing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blocks {
    len: usize,
    per: usize,
}

impl Blocks {
    pub(crate) fn new(len: usize, parts: usize, align: usize, min: usize) -> Blocks {
        let per = len
            .div_ceil(parts.max(1))
            .max(min)
            .max(1)
            .next_multiple_of(align.max(1));
        Blocks { len, per }
    }

    pub(crate) fn count(&self) -> usize {
        self.len.div_ceil(self.per)
    }

    /// Block `i` as `(start, end)`.
    pub(crate) fn get(&self, i: usize) -> (usize, usize) {
        let s = i * self.per;
        (s, (s + self.per).min(self.len))
    }
}

/// `dst[m×n] (+)= lhs[m×k] · rhs` where rhs is given by element strides; row-major dst with row
/// stride `dst_rs`. Single-threaded: callers parallelise over tiles.
///
/// # Safety
/// All pointers must be valid for the strided extents described.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: *const f32,
    rhs_rs: usize,
    rhs_cs: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for r in 0..m {
            std::ptr::write_bytes(dst.add(r * dst_rs), 0, n);
        }
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// f64 variant used for exact int8 products (see `numerics`).
///
/// # Safety
/// As [`gemm_f32`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_f64(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f64,
    dst_rs: usize,
    lhs: *const f64,
    lhs_rs: usize,
    rhs: *const f64,
    rhs_rs: usize,
    rhs_cs: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for r in 0..m {
            std::ptr::write_bytes(dst.add(r * dst_rs), 0, n);
        }
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        lhs,
        1,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}
