//! The C ABI of `shim/xrt_shim.cpp` (built by build.rs with the `npu` feature).

use std::ffi::{c_char, c_void, CStr};

#[repr(C)]
pub(crate) struct NpuDev {
    _private: [u8; 0],
}

#[repr(C)]
pub(crate) struct NpuKernel {
    _private: [u8; 0],
}

extern "C" {
    pub(crate) fn npu_dev_open(index: u32, err: *mut c_char, err_len: usize) -> *mut NpuDev;
    pub(crate) fn npu_dev_close(dev: *mut NpuDev);
    pub(crate) fn npu_dev_name(dev: *mut NpuDev, out: *mut c_char, len: usize) -> i32;
    /// One xclbin in its hardware context, the instruction buffer and one host-only buffer
    /// object of `arg_bytes[i]` bytes per runtime-sequence argument (kernel argument 3 + i).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn npu_kernel_load(
        dev: *mut NpuDev,
        xclbin: *const c_char,
        kernel_name: *const c_char,
        instr: *const u32,
        n_words: usize,
        arg_bytes: *const usize,
        n_args: usize,
        err: *mut c_char,
        err_len: usize,
    ) -> *mut NpuKernel;
    /// The host mapping of argument `i`'s buffer object.
    pub(crate) fn npu_kernel_arg(k: *mut NpuKernel, i: usize) -> *mut c_void;
    /// Syncs the flagged arguments to the device, runs (opcode 3, instructions, then the
    /// buffers), waits, syncs the flagged arguments back.
    pub(crate) fn npu_kernel_run(
        k: *mut NpuKernel,
        to_device: *const u8,
        from_device: *const u8,
        elapsed_ns: *mut u64,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
    pub(crate) fn npu_kernel_free(k: *mut NpuKernel);
}

/// The NUL-terminated message the shim wrote into `buf`.
pub(crate) fn err_text(buf: &[u8]) -> String {
    CStr::from_bytes_until_nul(buf)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
}
