//! The XRT NPU backend (cargo feature `npu`): compiled kernels from the manifest, loaded into
//! hardware contexts on first use (a few resident, least recently used evicted), one buffer
//! object per runtime-sequence argument allocated once per kernel, host packing by
//! `crate::host` (the same code the emulator backend runs), per-kernel device timing.
//!
//! Every family runs here: matmul (bf16, split weights, int8 with calibrated requantisation),
//! ffn, attention, layernorm and lm_head (full and subset).

mod ffi;
mod insts;

use std::collections::HashMap;
use std::ffi::CString;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use kernel_spec::Device;

use crate::device::{CallFn, DeviceBackend, DeviceKernelStat, StatTable};
use crate::host::{HostArg, Invocation, Layout, RunStats, SlotState};
use crate::kernels::{KernelEntry, KernelTable};
use crate::{BackendKind, RuntimeConfig, RuntimeError};

use ffi::err_text;
use insts::{device_of, read_insts};

const ACCEL: &str = "/dev/accel/accel0";
/// Hardware contexts kept at once (npu1 allows about 6 per process; keep headroom).
const MAX_RESIDENT: usize = 4;
/// `--xclbin-kernel-name` default of aiecc.
const KERNEL_NAME: &str = "MLIR_AIE";

/// One kernel in its hardware context, with the state of each argument's buffer.
struct Loaded {
    handle: *mut ffi::NpuKernel,
    args: Vec<HostArg>,
    slots: Vec<SlotState>,
    last_used: u64,
    /// A run failed: the context is in an unknown state and is dropped after the call.
    failed: bool,
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
}

pub(crate) struct NpuBackend {
    dev: *mut ffi::NpuDev,
    device: Device,
    layouts: HashMap<String, Result<Layout, String>>,
    state: Mutex<State>,
    stats: StatTable,
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

/// The buffers of a loaded kernel as an [`Invocation`] (the state lock is held by the caller).
struct XrtInvocation<'a> {
    name: &'a str,
    k: &'a mut Loaded,
}

impl XrtInvocation<'_> {
    fn ptr(&self, i: usize) -> *mut u8 {
        // SAFETY: i < args.len(): the shim returns the host mapping of an argument it allocated.
        unsafe { ffi::npu_kernel_arg(self.k.handle, i).cast::<u8>() }
    }
}

impl Invocation for XrtInvocation<'_> {
    fn args(&self) -> &[HostArg] {
        &self.k.args
    }

    fn slot(&mut self, i: usize) -> (&mut [u8], &mut SlotState) {
        let len = self.k.args[i].bytes();
        let p = self.ptr(i);
        // SAFETY: argument i was allocated with exactly `len` bytes and stays mapped while the
        // kernel is loaded; the state lock gives this invocation exclusive use of it.
        let bytes = unsafe { std::slice::from_raw_parts_mut(p, len) };
        (bytes, &mut self.k.slots[i])
    }

    fn bytes(&self, i: usize) -> &[u8] {
        // SAFETY: as in `slot`.
        unsafe { std::slice::from_raw_parts(self.ptr(i), self.k.args[i].bytes()) }
    }

    fn run(&mut self, outputs: &[usize]) -> Result<RunStats, RuntimeError> {
        let n = self.k.args.len();
        let to_device: Vec<u8> = self
            .k
            .slots
            .iter_mut()
            .map(|s| s.take_dirty() as u8)
            .collect();
        let from_device: Vec<u8> = (0..n).map(|i| outputs.contains(&i) as u8).collect();
        let mut ns = 0u64;
        let mut err = [0u8; 1024];
        // SAFETY: flag arrays have one entry per argument; err is writable.
        let rc = unsafe {
            ffi::npu_kernel_run(
                self.k.handle,
                to_device.as_ptr(),
                from_device.as_ptr(),
                &mut ns,
                err.as_mut_ptr().cast(),
                err.len(),
            )
        };
        if rc != 0 {
            self.k.failed = true;
            return Err(RuntimeError::Npu(format!(
                "kernel {}: {}",
                self.name,
                err_text(&err)
            )));
        }
        Ok(RunStats {
            runs: 1,
            device: Duration::from_nanos(ns),
            estimate_us: 0.0,
        })
    }
}

impl NpuBackend {
    /// Opens the NPU when the configuration asks for it (or `Auto` finds everything it needs).
    pub(crate) fn open_for(
        cfg: &RuntimeConfig,
        table: &mut KernelTable,
    ) -> Result<Option<NpuBackend>, RuntimeError> {
        let want = cfg.backend;
        if !matches!(want, BackendKind::Npu | BackendKind::Auto) {
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
        let compiled: Vec<&KernelEntry> = table
            .entries
            .iter()
            .filter(|e| e.compiled.is_some() && e.spec.is_some())
            .collect();
        if compiled.is_empty() {
            return unavailable(format!(
                "no compiled kernels in {}: run `cargo xtask build-kernels` with aiecc and Peano installed",
                table.source.as_ref().map_or_else(|| "generated/manifest.json".to_string(), |p| p.display().to_string())
            ));
        }
        let layouts = compiled
            .iter()
            .map(|e| {
                let spec = e.spec.as_ref().expect("filtered on spec");
                (e.name.clone(), Layout::of(spec).map_err(|e| e.to_string()))
            })
            .collect();
        match Self::open(layouts) {
            Ok(b) => {
                if table.device.is_none() {
                    table.device = Some(b.device);
                }
                Ok(Some(b))
            }
            Err(e) => unavailable(e.to_string()),
        }
    }

    fn open(layouts: HashMap<String, Result<Layout, String>>) -> Result<NpuBackend, RuntimeError> {
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
            layouts,
            state: Mutex::new(State {
                loaded: HashMap::new(),
                clock: 0,
            }),
            stats: StatTable::default(),
        })
    }

    /// Loads `entry`'s xclbin and instructions and allocates its argument buffers.
    fn load(&self, entry: &KernelEntry, layout: &Layout) -> Result<Loaded, RuntimeError> {
        let (xclbin, insts) = entry
            .compiled
            .as_ref()
            .expect("supports() checked compiled");
        let words = read_insts(insts)?;
        let args = layout.args().to_vec();
        let bytes: Vec<usize> = args.iter().map(HostArg::bytes).collect();
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
        let slots = vec![SlotState::default(); args.len()];
        Ok(Loaded {
            handle,
            args,
            slots,
            last_used: 0,
            failed: false,
        })
    }
}

impl DeviceBackend for NpuBackend {
    fn name(&self) -> &'static str {
        "npu"
    }

    fn device(&self) -> Device {
        self.device
    }

    fn supports(&self, entry: &KernelEntry) -> bool {
        // An entry whose layout cannot be derived is selected, and its error reported.
        entry.compiled.is_some()
            && entry.device == self.device
            && self.layouts.contains_key(&entry.name)
    }

    fn layout(&self, entry: &KernelEntry) -> Result<&Layout, RuntimeError> {
        match self.layouts.get(&entry.name) {
            Some(Ok(l)) => Ok(l),
            Some(Err(m)) => Err(RuntimeError::Npu(format!("kernel {}: {m}", entry.name))),
            None => Err(RuntimeError::Npu(format!(
                "kernel {} is not compiled",
                entry.name
            ))),
        }
    }

    fn invoke(&self, entry: &KernelEntry, call: &mut CallFn<'_>) -> Result<RunStats, RuntimeError> {
        let layout = self.layout(entry)?;
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
            let l = self.load(entry, layout)?;
            st.loaded.insert(entry.name.clone(), l);
        }
        let k = st.loaded.get_mut(&entry.name).expect("just inserted");
        k.last_used = clock;
        let r = call(
            &mut XrtInvocation {
                name: &entry.name,
                k,
            },
            layout,
        );
        if st.loaded.get(&entry.name).is_some_and(|k| k.failed) {
            st.loaded.remove(&entry.name);
        }
        if let Ok(s) = &r {
            self.stats.add(&entry.name, s);
        }
        r
    }

    fn kernel_stats(&self) -> Vec<DeviceKernelStat> {
        self.stats.all()
    }

    fn build_command(&self) -> &'static str {
        "cargo xtask build-kernels"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
