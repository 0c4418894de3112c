//! The XRT NPU backend (cargo feature `npu`): compiled kernels from the manifest, loaded into
//! hardware contexts on first use (a few resident, least recently used evicted), buffer objects
//! allocated once per kernel, bf16 conversion on the host, per-kernel device timing.
//!
//! Only bf16 matmul kernels run here so far; every other family (and int8, whose requantisation
//! needs a calibrated output scale before the run) goes to the CPU with a warning when
//! `allow_cpu_fallback` is on, or fails with a message naming the spec file otherwise.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use kernel_spec::{Device, Dtype, KernelSpec, Op};

use crate::kernels::{KernelEntry, KernelTable};
use crate::{BackendKind, Epilogue, Linear, RuntimeConfig, RuntimeError};

mod ffi {
    use std::ffi::{c_char, c_void};

    #[repr(C)]
    pub struct NpuDev {
        _private: [u8; 0],
    }
    #[repr(C)]
    pub struct NpuKernel {
        _private: [u8; 0],
    }

    extern "C" {
        pub fn npu_dev_open(index: u32, err: *mut c_char, err_len: usize) -> *mut NpuDev;
        pub fn npu_dev_close(dev: *mut NpuDev);
        pub fn npu_dev_name(dev: *mut NpuDev, out: *mut c_char, len: usize) -> i32;
        #[allow(clippy::too_many_arguments)]
        pub fn npu_kernel_load(
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
        pub fn npu_kernel_arg(k: *mut NpuKernel, i: usize) -> *mut c_void;
        pub fn npu_kernel_run(
            k: *mut NpuKernel,
            to_device: *const u8,
            from_device: *const u8,
            elapsed_ns: *mut u64,
            err: *mut c_char,
            err_len: usize,
        ) -> i32;
        pub fn npu_kernel_free(k: *mut NpuKernel);
    }
}

const ACCEL: &str = "/dev/accel/accel0";
/// Hardware contexts kept at once (npu1 allows about 6 per process; keep headroom).
const MAX_RESIDENT: usize = 4;
/// `--xclbin-kernel-name` default of aiecc.
const KERNEL_NAME: &str = "MLIR_AIE";

fn err_text(buf: &[u8]) -> String {
    CStr::from_bytes_until_nul(buf)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Host layout of one matmul kernel's runtime-sequence arguments (from `kernel_spec::plan`).
#[derive(Clone, Debug)]
struct MatmulLayout {
    m: usize,
    k: usize,
    n: usize,
    tk: usize,
    tn: usize,
    params: bool,
    residual: bool,
    /// bf16 planes of the weights (2 with `split_weights`: hi then lo per k-block).
    planes: usize,
}

impl MatmulLayout {
    fn of(spec: &KernelSpec) -> Result<MatmulLayout, RuntimeError> {
        let plan = kernel_spec::plan(spec)
            .map_err(|e| RuntimeError::Npu(format!("{}: {e}", spec.origin())))?;
        let p = plan.passes.first().ok_or_else(|| {
            RuntimeError::Npu(format!("{}: the plan has no matmul pass", spec.origin()))
        })?;
        Ok(MatmulLayout {
            m: p.m,
            k: p.k,
            n: p.n,
            tk: spec.tiling.tile_k,
            tn: spec.tiling.tile_n,
            params: p.params,
            residual: p.residual,
            planes: p.planes_b,
        })
    }

    /// Element counts (bf16) of a, b (+ parameter tiles), r, c in argument order.
    fn arg_elems(&self) -> Vec<usize> {
        let params = if self.params {
            (self.n / self.tn) * self.tk * self.tn
        } else {
            0
        };
        let mut v = vec![self.m * self.k, self.planes * self.k * self.n + params];
        if self.residual {
            v.push(self.m * self.n);
        }
        v.push(self.m * self.n);
        v
    }
}

struct Loaded {
    handle: *mut ffi::NpuKernel,
    layout: MatmulLayout,
    /// Identity of the weights currently packed in argument b (skip repacking on reuse).
    packed_weights: Option<(usize, usize)>,
    last_used: u64,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        // SAFETY: the handle came from npu_kernel_load and is freed once.
        unsafe { ffi::npu_kernel_free(self.handle) }
    }
}

struct State {
    loaded: HashMap<String, Loaded>,
    clock: u64,
    /// Device time per kernel: (runs, total).
    times: HashMap<String, (u64, Duration)>,
}

pub(crate) struct NpuBackend {
    dev: *mut ffi::NpuDev,
    device: Device,
    specs: HashMap<String, KernelSpec>,
    state: Mutex<State>,
}

// SAFETY: the device handle is only used under `state`'s lock or for immutable queries that XRT
// allows from any thread; kernel handles live inside the mutex.
unsafe impl Send for NpuBackend {}
unsafe impl Sync for NpuBackend {}

impl Drop for NpuBackend {
    fn drop(&mut self) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .loaded
            .clear();
        // SAFETY: opened in `open`, closed once after every kernel was freed.
        unsafe { ffi::npu_dev_close(self.dev) }
    }
}

impl NpuBackend {
    /// Opens the NPU when the configuration asks for it (or `Auto` finds everything it needs).
    pub(crate) fn open_for(
        cfg: &RuntimeConfig,
        table: &mut KernelTable,
    ) -> Result<Option<NpuBackend>, RuntimeError> {
        let want = cfg.backend;
        if want == BackendKind::Cpu {
            return Ok(None);
        }
        let unavailable = |why: String| -> Result<Option<NpuBackend>, RuntimeError> {
            if want == BackendKind::Npu {
                Err(RuntimeError::NpuUnavailable(why))
            } else {
                tracing::info!("using the CPU backend: {why}");
                Ok(None)
            }
        };
        if !Path::new(ACCEL).exists() {
            return unavailable(format!("{ACCEL} does not exist: load the amdxdna driver (Linux >= 6.14 or github.com/amd/xdna-driver)"));
        }
        if !table.entries.iter().any(|e| e.compiled.is_some()) {
            return unavailable(format!(
                "no compiled kernels in {}: run `cargo xtask build-kernels` with aiecc and Peano installed",
                table.source.as_ref().map_or_else(|| "generated/manifest.json".to_string(), |p| p.display().to_string())
            ));
        }
        let specs = match load_specs(table) {
            Ok(s) => s,
            Err(e) => return unavailable(e.to_string()),
        };
        match Self::open(specs) {
            Ok(b) => {
                if table.device.is_none() {
                    table.device = Some(b.device);
                }
                Ok(Some(b))
            }
            Err(e) => unavailable(e.to_string()),
        }
    }

    fn open(specs: HashMap<String, KernelSpec>) -> Result<NpuBackend, RuntimeError> {
        let mut err = [0u8; 1024];
        // SAFETY: err is writable for its length.
        let dev = unsafe { ffi::npu_dev_open(0, err.as_mut_ptr().cast(), err.len()) };
        if dev.is_null() {
            return Err(RuntimeError::NpuUnavailable(err_text(&err)));
        }
        let mut name = [0u8; 256];
        // SAFETY: dev is open; name is writable.
        unsafe { ffi::npu_dev_name(dev, name.as_mut_ptr().cast(), name.len()) };
        let name = err_text(&name);
        let device = device_of(&name);
        tracing::info!("NPU: {name} ({device})");
        Ok(NpuBackend {
            dev,
            device,
            specs,
            state: Mutex::new(State {
                loaded: HashMap::new(),
                clock: 0,
                times: HashMap::new(),
            }),
        })
    }

    pub(crate) fn device(&self) -> Device {
        self.device
    }

    /// Whether this backend runs `entry` (compiled bf16 matmul for this device with a spec).
    pub(crate) fn supports(&self, entry: &KernelEntry) -> bool {
        entry.compiled.is_some()
            && entry.device == self.device
            && entry.dtype == Dtype::Bf16
            && matches!(entry.op, Op::Matmul { quant: None, .. })
            && self.specs.contains_key(&entry.name)
    }

    /// Device time per kernel name: (runs, total).
    pub(crate) fn kernel_times(&self) -> Vec<(String, u64, Duration)> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = st
            .times
            .iter()
            .map(|(k, (n, t))| (k.clone(), *n, *t))
            .collect();
        v.sort();
        v
    }

    fn load(&self, entry: &KernelEntry) -> Result<Loaded, RuntimeError> {
        let (xclbin, insts) = entry
            .compiled
            .as_ref()
            .expect("supports() checked compiled");
        let spec = &self.specs[&entry.name];
        let layout = MatmulLayout::of(spec)?;
        let words = read_insts(insts)?;
        let bytes: Vec<usize> = layout.arg_elems().iter().map(|e| e * 2).collect();
        let path = CString::new(xclbin.to_string_lossy().as_bytes())
            .map_err(|_| RuntimeError::Npu(format!("{}: path contains NUL", xclbin.display())))?;
        let kname = CString::new(KERNEL_NAME).expect("no NUL");
        let mut err = [0u8; 1024];
        // SAFETY: all pointers are valid for the lengths passed.
        let handle = unsafe {
            ffi::npu_kernel_load(
                self.dev,
                path.as_ptr(),
                kname.as_ptr(),
                words.as_ptr(),
                words.len(),
                bytes.as_ptr(),
                bytes.len(),
                err.as_mut_ptr().cast(),
                err.len(),
            )
        };
        if handle.is_null() {
            return Err(RuntimeError::Npu(format!(
                "loading kernel {}: {}",
                entry.name,
                err_text(&err)
            )));
        }
        Ok(Loaded {
            handle,
            layout,
            packed_weights: None,
            last_used: 0,
        })
    }

    /// Runs a bf16 matmul kernel: x, W (as Wᵀ), bias (parameter tiles) and residual go to the
    /// device as bf16, zero-padded to the kernel's tiles; the bf16 output comes back as f32.
    pub(crate) fn matmul(
        &self,
        entry: &KernelEntry,
        x: &[f32],
        rows: usize,
        lin: &Linear,
        epi: Epilogue<'_>,
        out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.clock += 1;
        let clock = st.clock;
        if !st.loaded.contains_key(&entry.name) {
            if st.loaded.len() >= MAX_RESIDENT {
                let victim = st
                    .loaded
                    .iter()
                    .min_by_key(|(_, l)| l.last_used)
                    .map(|(n, _)| n.clone());
                if let Some(v) = victim {
                    st.loaded.remove(&v);
                }
            }
            let l = self.load(entry)?;
            st.loaded.insert(entry.name.clone(), l);
        }
        let kernel = st.loaded.get_mut(&entry.name).expect("just inserted");
        kernel.last_used = clock;
        let lay = kernel.layout.clone();
        let (k, n) = (lin.in_f, lin.out_f);
        if rows > lay.m || k > lay.k || n > lay.n {
            return Err(RuntimeError::Npu(format!(
                "kernel {} is {}x{}x{}, the call is {rows}x{k}x{n}",
                entry.name, lay.m, lay.k, lay.n
            )));
        }
        let handle = kernel.handle;
        let arg = |i: usize, len: usize| -> &mut [u16] {
            // SAFETY: argument i was allocated with arg_elems()[i] bf16 elements and stays
            // mapped while the kernel is loaded (we hold the state lock).
            unsafe {
                std::slice::from_raw_parts_mut(ffi::npu_kernel_arg(handle, i).cast::<u16>(), len)
            }
        };
        let elems = lay.arg_elems();
        let to_bf16 = |v: f32| half::bf16::from_f32(v).to_bits();

        let a = arg(0, elems[0]);
        a.fill(0);
        for r in 0..rows {
            for (d, s) in a[r * lay.k..r * lay.k + k]
                .iter_mut()
                .zip(&x[r * k..(r + 1) * k])
            {
                *d = to_bf16(*s);
            }
        }
        let identity = (lin.w.as_ptr() as usize, lin.w.len());
        let repack = kernel.packed_weights != Some(identity);
        if repack {
            let b = arg(1, elems[1]);
            b.fill(0);
            for j in 0..n {
                for i in 0..k {
                    let w = lin.w[j * k + i];
                    if lay.planes == 2 {
                        // Row i of k-block kb: hi in row 2·kb·tk + i % tk, lo one tile later.
                        let (kb, ii) = (i / lay.tk, i % lay.tk);
                        let hi = half::bf16::from_f32(w);
                        let lo = half::bf16::from_f32(w - hi.to_f32());
                        b[(2 * kb * lay.tk + ii) * lay.n + j] = hi.to_bits();
                        b[((2 * kb + 1) * lay.tk + ii) * lay.n + j] = lo.to_bits();
                    } else {
                        b[i * lay.n + j] = to_bf16(w);
                    }
                }
            }
            if lay.params {
                // Word 0 of output channel c (the f32 bias, bf16-exact) sits in rows 0 (low half)
                // and 1 (high half) of the row-major tk x tn parameter tile of c's n-block.
                let base = lay.planes * lay.k * lay.n;
                for (c, &bias) in lin.b.as_deref().unwrap_or(&[]).iter().enumerate() {
                    let bits = crate::numerics::round_bf16(bias).to_bits();
                    let tile = base + (c / lay.tn) * lay.tk * lay.tn;
                    b[tile + c % lay.tn] = (bits & 0xffff) as u16;
                    b[tile + lay.tn + c % lay.tn] = (bits >> 16) as u16;
                }
            }
            kernel.packed_weights = Some(identity);
        }
        let mut to_device = vec![1u8, repack as u8];
        if lay.residual {
            let res = epi.residual.ok_or_else(|| {
                RuntimeError::Npu(format!(
                    "kernel {} adds a residual but the call has none",
                    entry.name
                ))
            })?;
            let r = arg(2, elems[2]);
            r.fill(0);
            for row in 0..rows {
                for (d, s) in r[row * lay.n..row * lay.n + n]
                    .iter_mut()
                    .zip(&res[row * n..(row + 1) * n])
                {
                    *d = to_bf16(*s);
                }
            }
            to_device.push(1);
        }
        to_device.push(0);
        let mut from_device = vec![0u8; elems.len()];
        *from_device.last_mut().expect("c") = 1;
        let mut ns = 0u64;
        let mut err = [0u8; 1024];
        // SAFETY: flag arrays have one entry per argument; err is writable.
        let rc = unsafe {
            ffi::npu_kernel_run(
                handle,
                to_device.as_ptr(),
                from_device.as_ptr(),
                &mut ns,
                err.as_mut_ptr().cast(),
                err.len(),
            )
        };
        if rc != 0 {
            // A failed run leaves the context in an unknown state: drop it.
            st.loaded.remove(&entry.name);
            return Err(RuntimeError::Npu(format!(
                "kernel {}: {}",
                entry.name,
                err_text(&err)
            )));
        }
        let c = arg(elems.len() - 1, elems[elems.len() - 1]);
        for row in 0..rows {
            for (d, s) in out[row * n..(row + 1) * n]
                .iter_mut()
                .zip(&c[row * lay.n..row * lay.n + n])
            {
                *d = half::bf16::from_bits(*s).to_f32();
            }
        }
        let t = st.times.entry(entry.name.clone()).or_default();
        t.0 += 1;
        t.1 += Duration::from_nanos(ns);
        Ok(())
    }
}

/// `npu1` for Phoenix / Hawk Point, `npu2` for Strix / Krackan, from XRT's device name.
fn device_of(name: &str) -> Device {
    let n = name.to_ascii_lowercase();
    if ["strix", "krackan", "npu4", "npu5", "npu6"]
        .iter()
        .any(|s| n.contains(s))
    {
        Device::Npu2
    } else {
        if !["phoenix", "hawk", "npu1"].iter().any(|s| n.contains(s)) {
            tracing::warn!(
                "unknown NPU \"{name}\": assuming npu1 (set NPU_RUNTIME_DEVICE to override)"
            );
        }
        Device::Npu1
    }
}

/// The specs of the manifest's kernels (for tiling and argument layout): `kernel-specs/` at the
/// workspace root the manifest belongs to.
fn load_specs(table: &KernelTable) -> Result<HashMap<String, KernelSpec>, RuntimeError> {
    let root = table
        .source
        .as_ref()
        .and_then(|m| m.parent())
        .and_then(|g| {
            if g.file_name().is_some_and(|n| n == "generated") {
                g.parent()
            } else {
                Some(g)
            }
        })
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = root.join("kernel-specs");
    let specs = kernel_spec::load_dir(&dir).map_err(|e| {
        RuntimeError::Npu(format!(
            "the NPU backend needs the kernel specs next to the manifest: {e}"
        ))
    })?;
    Ok(specs.into_iter().map(|s| (s.name.clone(), s)).collect())
}

/// The NPU instruction stream: aiecc's binary (little-endian u32 words) or text (one hex word
/// per line).
fn read_insts(path: &Path) -> Result<Vec<u32>, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|e| {
        RuntimeError::Npu(format!(
            "{}: {e}; rebuild with `cargo xtask build-kernels`",
            path.display()
        ))
    })?;
    if path.extension().is_some_and(|e| e == "txt") {
        let text = String::from_utf8_lossy(&bytes);
        return text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                u32::from_str_radix(l.trim_start_matches("0x"), 16)
                    .map_err(|e| RuntimeError::Npu(format!("{}: \"{l}\": {e}", path.display())))
            })
            .collect();
    }
    if bytes.len() % 4 != 0 || bytes.is_empty() {
        return Err(RuntimeError::Npu(format!(
            "{}: {} bytes is not a whole number of 32-bit instruction words",
            path.display(),
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_map_to_generations() {
        assert_eq!(device_of("NPU Strix"), Device::Npu2);
        assert_eq!(device_of("RyzenAI-npu1"), Device::Npu1);
        assert_eq!(device_of("NPU Phoenix"), Device::Npu1);
    }

    #[test]
    fn open_on_the_device() {
        if !Path::new(ACCEL).exists() {
            eprintln!("SKIP open_on_the_device: {ACCEL} is absent (no NPU on this machine)");
            return;
        }
        let b = NpuBackend::open(HashMap::new())
            .expect("XRT must open the NPU when /dev/accel/accel0 exists");
        eprintln!("opened {}", b.device());
    }
}
