//! The kernel table a model runs with: built into the library from `kernel-specs/` at compile
//! time, or read from an explicit manifest or spec directory. Never searched for.

use std::path::Path;

use npu_runtime::kernel_spec;
use npu_runtime::KernelEntry;

use crate::error::Error;

/// `kernel-specs/*.toml` as they were when this library was compiled.
const BUILT_IN: [(&str, &str); 5] = [
    (
        "attention.toml",
        include_str!("../../../kernel-specs/attention.toml"),
    ),
    ("ffn.toml", include_str!("../../../kernel-specs/ffn.toml")),
    (
        "layernorm.toml",
        include_str!("../../../kernel-specs/layernorm.toml"),
    ),
    (
        "lm_head.toml",
        include_str!("../../../kernel-specs/lm_head.toml"),
    ),
    (
        "matmul.toml",
        include_str!("../../../kernel-specs/matmul.toml"),
    ),
];

/// The built-in kernel specs as kernel entries (none compiled).
pub fn built_in() -> Result<Vec<KernelEntry>, Error> {
    let mut entries = Vec::new();
    for (file, text) in BUILT_IN {
        let path = Path::new("kernel-specs").join(file);
        let specs = kernel_spec::parse_file(&path, text)
            .map_err(|e| Error::Kernels(format!("built-in {e}")))?;
        entries.extend(specs.iter().map(KernelEntry::from_spec));
    }
    Ok(entries)
}

/// The specs of a directory of kernel spec TOML files as kernel entries.
pub fn from_spec_dir(dir: &Path) -> Result<Vec<KernelEntry>, Error> {
    let specs = kernel_spec::load_dir(dir).map_err(|e| Error::Kernels(e.to_string()))?;
    Ok(specs.iter().map(KernelEntry::from_spec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_table_is_the_spec_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernel-specs");
        let names = |e: Vec<KernelEntry>| e.into_iter().map(|e| e.name).collect::<Vec<_>>();
        let built_in = names(built_in().unwrap());
        assert!(built_in.len() > 10, "{} entries", built_in.len());
        assert_eq!(built_in, names(from_spec_dir(&dir).unwrap()));
    }
}
