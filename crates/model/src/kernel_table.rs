//! A kernel table read from an explicit directory of spec files (the built-in table and
//! manifests are the runtime's). Never searched for.

use std::path::Path;

use npu_runtime::kernel_spec;
use npu_runtime::KernelEntry;

use crate::error::Error;

/// The specs of a directory of kernel spec TOML files as kernel entries.
pub fn from_spec_dir(dir: &Path) -> Result<Vec<KernelEntry>, Error> {
    let specs = kernel_spec::load_dir(dir).map_err(|e| Error::Kernels(e.to_string()))?;
    Ok(specs.iter().map(KernelEntry::from_spec).collect())
}
