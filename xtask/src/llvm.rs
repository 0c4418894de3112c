//! Where LLVM/MLIR 22 lives (needed only by the melior verifier, `crates/kernel-verify`).

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

/// Installs LLVM/MLIR 22 with `scripts/install-llvm.sh` when missing. Returns whether it is there.
pub fn ensure_installed() -> anyhow::Result<bool> {
    if prefix().is_some() {
        return Ok(true);
    }
    let script = workspace_root().join("scripts/install-llvm.sh");
    eprintln!("installing LLVM/MLIR 22 with {}", script.display());
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("{} failed ({status}); install libmlir-22-dev mlir-22-tools llvm-22-dev libpolly-22-dev by hand", script.display());
    }
    Ok(prefix().is_some())
}

/// Points melior's build scripts at LLVM 22.
pub fn set_env(cmd: &mut Command) {
    if let Some(p) = prefix() {
        cmd.env("MLIR_SYS_220_PREFIX", &p)
            .env("TABLEGEN_220_PREFIX", &p);
    }
}
