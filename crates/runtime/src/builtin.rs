//! The kernel specs of this workspace, built into the library at compile time, so that a
//! runtime started from any directory knows how each kernel rounds without looking for files.
//! (A new entry in an existing file is picked up by the next build; a new family's file is
//! listed here.)

use std::path::Path;

use crate::kernels::KernelEntry;
use crate::RuntimeError;

macro_rules! spec_file {
    ($name:literal) => {
        (
            concat!("kernel-specs/", $name),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../kernel-specs/",
                $name
            )),
        )
    };
}

const FILES: &[(&str, &str)] = &[
    spec_file!("attention.toml"),
    spec_file!("ffn.toml"),
    spec_file!("layernorm.toml"),
    spec_file!("lm_head.toml"),
    spec_file!("matmul.toml"),
];

/// Every built-in entry, in file order.
pub(crate) fn entries() -> Result<Vec<KernelEntry>, RuntimeError> {
    let mut out = Vec::new();
    for (file, text) in FILES {
        let specs = kernel_spec::parse_file(Path::new(file), text)
            .map_err(|e| RuntimeError::Config(format!("built-in kernel specs: {e}")))?;
        out.extend(specs.iter().map(KernelEntry::from_spec));
    }
    Ok(out)
}
