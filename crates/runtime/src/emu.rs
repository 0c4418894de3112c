//! The emulator backend (`BackendKind::Emu`): every kernel call runs the entry's rendered
//! design in `aie-emu` instead of the NPU, with the same host packing as the XRT backend.
//! Designs are loaded once per entry (on first use, thread-safe); host buffers are pooled per
//! entry so that weight images are not copied again on every call.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use aie_emu::Emulator;
use kernel_spec::{Device, KernelSpec};

use crate::device::{CallFn, DeviceBackend, DeviceKernelStat, StatTable};
use crate::host::{BufferSet, Layout, RunStats, VecInvocation};
use crate::kernels::{KernelEntry, KernelTable};
use crate::RuntimeError;

/// Buffer sets kept per entry (each holds a copy of the entry's weights).
const MAX_POOLED_SETS: usize = 2;

struct Slot {
    spec: KernelSpec,
    design: PathBuf,
    layout: Result<Layout, String>,
    loaded: OnceLock<Result<Arc<Loaded>, String>>,
}

struct Loaded {
    emu: Emulator,
    pool: Mutex<Vec<BufferSet>>,
}

pub(crate) struct EmuBackend {
    device: Device,
    slots: HashMap<String, Slot>,
    stats: StatTable,
}

impl EmuBackend {
    /// The entries of `table` that have a rendered design and a spec (from the manifest).
    pub(crate) fn open(table: &KernelTable, device: Device) -> Result<EmuBackend, RuntimeError> {
        let slots: HashMap<String, Slot> = table
            .entries
            .iter()
            .filter_map(|e| {
                let (spec, design) = (e.spec.clone()?, e.design.clone()?);
                let layout = Layout::of(&spec).map_err(|e| e.to_string());
                Some((
                    e.name.clone(),
                    Slot {
                        spec,
                        design,
                        layout,
                        loaded: OnceLock::new(),
                    },
                ))
            })
            .collect();
        if slots.is_empty() {
            return Err(RuntimeError::Config(format!(
                "the emu backend runs the rendered designs listed in a kernel manifest, and {} lists none: run `cargo xtask build-kernels --emit-only` (or set RuntimeConfig::manifest to a manifest it wrote)",
                table
                    .source
                    .as_ref()
                    .map_or_else(|| "the kernel table".to_string(), |p| p.display().to_string())
            )));
        }
        Ok(EmuBackend {
            device,
            slots,
            stats: StatTable::default(),
        })
    }

    fn loaded(&self, entry: &KernelEntry) -> Result<(&Slot, Arc<Loaded>), RuntimeError> {
        let err = |msg: String| RuntimeError::Emu {
            entry: entry.name.clone(),
            msg,
        };
        let slot = self
            .slots
            .get(&entry.name)
            .ok_or_else(|| err("no rendered design for this entry".into()))?;
        let layout = slot.layout.as_ref().map_err(|m| err(m.clone()))?;
        let loaded = slot.loaded.get_or_init(|| {
            let emu = Emulator::load(&slot.spec, &slot.design).map_err(|e| e.to_string())?;
            layout.check_args(&slot.design, emu.host_args())?;
            Ok(Arc::new(Loaded {
                emu,
                pool: Mutex::new(Vec::new()),
            }))
        });
        Ok((slot, loaded.clone().map_err(err)?))
    }
}

impl DeviceBackend for EmuBackend {
    fn name(&self) -> &'static str {
        "emu"
    }

    fn device(&self) -> Device {
        self.device
    }

    fn supports(&self, entry: &KernelEntry) -> bool {
        entry.device == self.device && self.slots.contains_key(&entry.name)
    }

    fn layout(&self, entry: &KernelEntry) -> Result<&Layout, RuntimeError> {
        let slot = self
            .slots
            .get(&entry.name)
            .ok_or_else(|| RuntimeError::Emu {
                entry: entry.name.clone(),
                msg: "no rendered design for this entry".into(),
            })?;
        slot.layout.as_ref().map_err(|m| RuntimeError::Emu {
            entry: entry.name.clone(),
            msg: m.clone(),
        })
    }

    fn invoke(&self, entry: &KernelEntry, call: &mut CallFn<'_>) -> Result<RunStats, RuntimeError> {
        let (slot, k) = self.loaded(entry)?;
        let layout = slot.layout.as_ref().expect("loaded() checked the layout");
        let taken = k.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut set = taken.unwrap_or_else(|| BufferSet::new(layout.args()));
        let name = entry.name.as_str();
        let r = {
            let mut inv = VecInvocation::new(&mut set, |bufs: &mut [&mut [u8]]| {
                let rep = k.emu.run(bufs).map_err(|e| RuntimeError::Emu {
                    entry: name.to_string(),
                    msg: e.to_string(),
                })?;
                Ok(RunStats {
                    runs: 1,
                    estimate_us: rep.estimate_us,
                    ..RunStats::default()
                })
            });
            call(&mut inv, layout)
        };
        // A failed run may have left anything in the buffers: do not reuse them.
        if let Ok(stats) = &r {
            self.stats.add(name, stats);
            let mut pool = k.pool.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < MAX_POOLED_SETS {
                pool.push(set);
            }
        }
        r
    }

    fn kernel_stats(&self) -> Vec<DeviceKernelStat> {
        self.stats.all()
    }

    fn build_command(&self) -> &'static str {
        "cargo xtask build-kernels --emit-only"
    }
}
