//! Where LLVM/MLIR 22 lives (needed only by the melior verifier, `crates/kernel-verify`), and
//! installing it with the other system packages.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};

use crate::workspace_root;

/// Debian's install prefix of LLVM 22, when its MLIR development files are present.
pub fn prefix() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/lib/llvm-22");
    p.join("lib/cmake/mlir/MLIRConfig.cmake")
        .exists()
        .then_some(p)
}

/// Installs the system packages (LLVM/MLIR 22, and `oggenc` for the audio tests) with
/// `scripts/install-system-packages.sh` when any is missing. Returns whether LLVM/MLIR 22 is there.
pub fn ensure_installed() -> anyhow::Result<bool> {
    if prefix().is_some() && on_path("oggenc") {
        return Ok(true);
    }
    let script = workspace_root().join("scripts/install-system-packages.sh");
    eprintln!("installing system packages with {}", script.display());
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!(
            "{} failed ({status}); install the packages it lists by hand",
            script.display()
        );
    }
    Ok(prefix().is_some())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Points melior's build scripts at LLVM 22.
pub fn set_env(cmd: &mut Command) {
    if let Some(p) = prefix() {
        cmd.env("MLIR_SYS_220_PREFIX", &p)
            .env("TABLEGEN_220_PREFIX", &p);
    }
}
