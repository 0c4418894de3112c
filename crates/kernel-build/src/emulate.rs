//! Every rendered design runs once in the dataflow emulator before it is compiled: a design
//! that deadlocks, overruns a buffer or leaves the array out of step is a build failure naming
//! its line, and the emulator's event-level time estimate is recorded beside the roofline.

use std::path::Path;

use kernel_spec::manifest::Emulated;
use kernel_spec::KernelSpec;

/// Written into each kernel directory (and covered by its stamp).
pub const EMULATION_FILE: &str = "emulation.json";

/// Runs one invocation of `design` (the text of `path`) on zero-filled host buffers.
pub fn emulate(spec: &KernelSpec, path: &Path, design: &str) -> Result<Emulated, String> {
    let emu = aie_emu::Emulator::from_text(spec, path, design).map_err(|e| e.to_string())?;
    let mut host: Vec<Vec<u8>> = emu.host_args().iter().map(|a| vec![0; a.bytes()]).collect();
    let mut views: Vec<&mut [u8]> = host.iter_mut().map(|v| v.as_mut_slice()).collect();
    let r = emu.run(&mut views).map_err(|e| e.to_string())?;
    Ok(Emulated {
        estimate_us: r.estimate_us,
        core_calls: r.calls,
        host_bytes: r.host_bytes,
        max_queued_tasks: r.max_queued_tasks,
    })
}

/// The record of a built kernel directory, if it has one.
pub fn read(dir: &Path) -> Option<Emulated> {
    let text = std::fs::read_to_string(dir.join(EMULATION_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}
