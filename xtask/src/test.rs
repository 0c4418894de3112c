//! `cargo xtask test`: the whole test suite on a fresh machine. Installs what the tests need
//! (LLVM/MLIR 22 for the melior verifier, oggenc, numpy for the log-mel reference), fetches the
//! models the model tests use, then runs every crate's tests in the release profile (the model
//! tests run the real network), and lists every check that was skipped.

use std::process::Command;

use anyhow::{bail, Context};

use crate::{llvm, python, workspace_root};

/// numpy for the log-mel test's independent reference (crates/model/tests/mel.rs).
const NUMPY: &str = "numpy==2.2.6";

/// Where the model tests record checks they had to skip (crates/model/tests/support).
const SKIP_LOG: &str = "tmp/skipped-tests.txt";

#[derive(clap::Args)]
pub struct Args {
    /// Skip installing system packages (LLVM/MLIR 22); the melior verifier is then not built.
    #[arg(long)]
    pub no_install: bool,
    /// Arguments passed on to `cargo test` (after `--`).
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let root = workspace_root();
    let have_llvm = if args.no_install {
        llvm::prefix().is_some()
    } else {
        llvm::ensure_installed()?
    };

    // Models used by the model tests: fetched once into the shared cache, verified by sha256.
    let cache = whisper_fetch::default_cache_dir();
    for name in ["tiny.en", "base"] {
        whisper_fetch::model_dir(name, &cache, true)
            .with_context(|| format!("fetching model {name} for the tests"))?;
    }
    whisper_fetch::fetch_vad(&cache).context("fetching Silero VAD for the tests")?;
    // Optional: without it the numpy reference check skips (and is listed below as skipped).
    let numpy_python = python::venv(&cache, NUMPY)
        .map_err(|e| eprintln!("warning: no {NUMPY} for the log-mel reference check: {e:#}"))
        .ok();

    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(&root).args(["test", "--release"]);
    if have_llvm {
        cmd.arg("--workspace");
        llvm::set_env(&mut cmd);
    } else {
        eprintln!("warning: LLVM/MLIR 22 not installed: skipping crates/kernel-verify (run scripts/install-system-packages.sh)");
    }
    if let Some(python) = &numpy_python {
        cmd.env("XDNA_TEST_PYTHON", python);
    }
    cmd.args(&args.cargo_args);

    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), Into::into);
    let skip_log = target.join(SKIP_LOG);
    if skip_log.exists() {
        std::fs::remove_file(&skip_log)
            .with_context(|| format!("removing {}", skip_log.display()))?;
    }
    eprintln!("running: {cmd:?}");
    let status = cmd.status().context("running cargo test")?;
    report_skips(&skip_log);
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

/// libtest shows nothing of a passing test, so the checks that skipped themselves (missing speech
/// data, tool or download) are listed here, after the results.
fn report_skips(log: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(log) else {
        return;
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        return;
    }
    eprintln!(
        "\n!!!! {} check(s) were SKIPPED, not passed: they could not run on this machine !!!!",
        lines.len()
    );
    for line in lines {
        eprintln!("  {line}");
    }
    eprintln!();
}
