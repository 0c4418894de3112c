//! What the runtime needs of a backend that runs rendered designs (the XRT NPU backend and the
//! emulator backend): which entries it runs, their host layouts, and one invocation at a time.

use std::time::Duration;

use kernel_spec::Device;

use crate::host::{Invocation, Layout, RunStats};
use crate::kernels::KernelEntry;
use crate::RuntimeError;

/// Runs (packs, runs, unpacks) one call on an invocation of its entry.
pub(crate) type CallFn<'a> =
    dyn FnMut(&mut dyn Invocation, &Layout) -> Result<RunStats, RuntimeError> + 'a;

pub(crate) trait DeviceBackend: Send + Sync {
    /// `"npu"` or `"emu"`.
    fn name(&self) -> &'static str;

    /// The NPU generation whose entries run here.
    fn device(&self) -> Device;

    /// Whether this backend has what `entry` needs (compiled artifacts, or a rendered design,
    /// and its spec).
    fn supports(&self, entry: &KernelEntry) -> bool;

    /// The host layout of a supported entry.
    fn layout(&self, entry: &KernelEntry) -> Result<&Layout, RuntimeError>;

    /// Runs `call` with exclusive use of one set of the entry's host buffers.
    fn invoke(&self, entry: &KernelEntry, call: &mut CallFn<'_>) -> Result<RunStats, RuntimeError>;

    /// Per kernel: runs, device time, estimated NPU time.
    fn kernel_stats(&self) -> Vec<DeviceKernelStat>;

    /// What to run after adding a spec entry (for messages).
    fn build_command(&self) -> &'static str;
}

/// Totals of one kernel on a device backend.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceKernelStat {
    pub name: String,
    pub runs: u64,
    /// Measured around run and wait (XRT); zero in the emulator.
    pub device: Duration,
    /// The emulator's estimate of the NPU time, µs: an event-level model, not a measurement.
    pub estimate_us: f64,
}

/// Accumulates per-kernel totals (shared by both backends).
#[derive(Default)]
pub(crate) struct StatTable(std::sync::Mutex<std::collections::BTreeMap<String, DeviceKernelStat>>);

impl StatTable {
    pub(crate) fn add(&self, name: &str, s: &RunStats) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let e = t
            .entry(name.to_string())
            .or_insert_with(|| DeviceKernelStat {
                name: name.to_string(),
                ..DeviceKernelStat::default()
            });
        e.runs += u64::from(s.runs);
        e.device += s.device;
        e.estimate_us += s.estimate_us;
    }

    pub(crate) fn all(&self) -> Vec<DeviceKernelStat> {
        let t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        t.values().cloned().collect()
    }
}
