//! `cargo xtask fuzz [--seconds N] [TARGET...]`: builds the cargo-fuzz targets of `fuzz/`
//! (installing cargo-fuzz when it is missing), writes their seed corpora (`fuzz_seeds`), runs
//! each target for N seconds and prints executions and coverage per target. A crash, panic,
//! timeout or out-of-memory fails the command and names the input libFuzzer saved.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

use crate::{fuzz_seeds, workspace_root};

/// Every target with the longest input it is given: long enough for the seeds and their
/// framing, short enough that each run stays fast.
pub const TARGETS: [(&str, usize); 10] = [
    ("kernel_spec", 4096),
    ("audio_wav", 32 * 1024),
    ("audio_flac", 32 * 1024),
    ("audio_mp3", 32 * 1024),
    ("audio_ogg", 32 * 1024),
    ("ct2_model", 16 * 1024),
    ("safetensors_model", 16 * 1024),
    ("tokenizer", 64 * 1024),
    ("build_cache", 16 * 1024),
    ("server_form", 8 * 1024),
];

/// libFuzzer's limits for every run: a 100-byte input must not allocate gigabytes, nor take
/// seconds.
const RSS_LIMIT_MB: u32 = 2048;
const TIMEOUT_S: u32 = 10;

#[derive(clap::Args)]
pub struct Args {
    /// How long to fuzz each target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// An unoptimised build without AddressSanitizer: about a third of the build time, for a
    /// smoke run (overflow checks and debug assertions stay on; each run executes less).
    #[arg(long)]
    pub fast_build: bool,
    /// Where cargo-fuzz builds (default: fuzz/target).
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Use the targets as last built (skip `cargo fuzz build`).
    #[arg(long)]
    pub no_build: bool,
    /// Only write the seed corpora into fuzz/seeds/.
    #[arg(long)]
    pub seeds_only: bool,
    /// Targets to run (default: all).
    pub targets: Vec<String>,
}

/// What one run of a target did.
struct RunStats {
    target: &'static str,
    executions: u64,
    coverage: u64,
    seconds: f64,
    outcome: Result<(), String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let targets = select(&args.targets)?;
    let root = workspace_root();
    let fuzz_dir = root.join("fuzz");
    let target_dir = args
        .target_dir
        .clone()
        .unwrap_or_else(|| fuzz_dir.join("target"));
    let seeds = fuzz_dir.join("seeds");
    fuzz_seeds::write_all(&root, &seeds).context("writing the seed corpora")?;
    if args.seeds_only {
        return Ok(());
    }
    if !args.no_build {
        ensure_cargo_fuzz()?;
        let started = Instant::now();
        build(&fuzz_dir, &target_dir, args.fast_build)?;
        eprintln!(
            "fuzz targets built in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }

    let mut all = Vec::new();
    for (target, max_len) in targets {
        let stats = run_target(
            &fuzz_dir,
            &target_dir,
            args.fast_build,
            target,
            max_len,
            args.seconds,
        )?;
        eprintln!(
            "{target}: {} executions, cov {}, {:.0} s: {}",
            stats.executions,
            stats.coverage,
            stats.seconds,
            stats.outcome.as_ref().map_or_else(|e| e.as_str(), |_| "ok")
        );
        all.push(stats);
    }
    println!(
        "{:<18} {:>12} {:>8} {:>7}  result",
        "target", "executions", "cov", "seconds"
    );
    for s in &all {
        println!(
            "{:<18} {:>12} {:>8} {:>7.0}  {}",
            s.target,
            s.executions,
            s.coverage,
            s.seconds,
            s.outcome.as_ref().map_or_else(|e| e.as_str(), |_| "ok")
        );
    }
    let failed: Vec<&RunStats> = all.iter().filter(|s| s.outcome.is_err()).collect();
    if !failed.is_empty() {
        bail!(
            "{} fuzz target(s) found a problem: {}; reproduce with `fuzz/target/x86_64-unknown-linux-gnu/release/TARGET ARTIFACT` (debug/ after --fast-build), \
             fix it, and add the input as a regression test in the owning crate",
            failed.len(),
            failed
                .iter()
                .map(|s| s.target)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn select(names: &[String]) -> anyhow::Result<Vec<(&'static str, usize)>> {
    if names.is_empty() {
        return Ok(TARGETS.to_vec());
    }
    names
        .iter()
        .map(|n| {
            TARGETS
                .iter()
                .find(|(t, _)| t == n)
                .copied()
                .with_context(|| {
                    format!(
                        "no fuzz target {n:?}; the targets are {}",
                        TARGETS.map(|t| t.0).join(", ")
                    )
                })
        })
        .collect()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Nightly (cargo-fuzz needs it) and cargo-fuzz itself, installed from crates.io if missing.
fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !nightly {
        bail!("cargo fuzz needs the nightly toolchain: install it with `rustup toolchain install nightly`");
    }
    let have = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        eprintln!("installing cargo-fuzz from crates.io");
        let ok = cargo()
            .args(["install", "--locked", "cargo-fuzz"])
            .status()
            .context("running cargo install cargo-fuzz")?
            .success();
        if !ok {
            bail!("`cargo install --locked cargo-fuzz` failed (see above)");
        }
    }
    Ok(())
}

fn build(fuzz_dir: &Path, target_dir: &Path, fast: bool) -> anyhow::Result<()> {
    // Plain `cargo` (rustup's proxy): the `+nightly` must reach rustup, not the stable cargo
    // that runs xtask.
    let mut cmd = Command::new("cargo");
    cmd.current_dir(fuzz_dir)
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .args(["+nightly", "fuzz", "build", "--target-dir"])
        .arg(target_dir);
    if fast {
        cmd.args(["--dev", "--sanitizer", "none"]);
    } else {
        cmd.args(["-O", "-a"]);
    }
    let ok = cmd
        .status()
        .context("running cargo +nightly fuzz build")?
        .success();
    if !ok {
        bail!(
            "`cargo +nightly fuzz build` failed in {}",
            fuzz_dir.display()
        );
    }
    Ok(())
}

pub fn binary(target_dir: &Path, fast: bool, target: &str) -> PathBuf {
    let profile = if fast { "debug" } else { "release" };
    target_dir
        .join("x86_64-unknown-linux-gnu")
        .join(profile)
        .join(target)
}

fn run_target(
    fuzz_dir: &Path,
    target_dir: &Path,
    fast: bool,
    target: &'static str,
    max_len: usize,
    seconds: u64,
) -> anyhow::Result<RunStats> {
    // A smoke run starts from the seeds alone (as on a fresh clone), so its time is the same
    // everywhere; full runs keep growing `fuzz/corpus/`.
    let corpus = if fast {
        let c = fuzz_dir.join("corpus-smoke").join(target);
        std::fs::remove_dir_all(&c).ok();
        c
    } else {
        fuzz_dir.join("corpus").join(target)
    };
    let artifacts = fuzz_dir.join("artifacts").join(target);
    let logs = fuzz_dir.join("logs");
    for d in [&corpus, &artifacts, &logs] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let log_path = logs.join(format!("{target}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = Command::new(binary(target_dir, fast, target));
    cmd.current_dir(fuzz_dir)
        .arg(&corpus)
        .arg(fuzz_dir.join("seeds").join(target))
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-timeout={TIMEOUT_S}"))
        .arg(format!("-max_len={max_len}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // Leaks at exit (process-wide caches) are not findings here.
        .env("ASAN_OPTIONS", "detect_leaks=0:detect_odr_violation=0")
        .stdout(log.try_clone()?)
        .stderr(log);
    let dict = fuzz_dir.join("dict").join(format!("{target}.dict"));
    if dict.is_file() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    let started = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("running fuzz target {target} (built?)"))?;
    let seconds = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let (executions, coverage) = final_stats(&text);
    let outcome = if status.success() {
        Ok(())
    } else {
        let artifact = text
            .lines()
            .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim()))
            .unwrap_or("(no input saved)");
        Err(format!(
            "FAILED ({status}); input {artifact}; log {}",
            log_path.display()
        ))
    };
    Ok(RunStats {
        target,
        executions,
        coverage,
        seconds,
        outcome,
    })
}

/// Executions (`stat::number_of_executed_units`, else the last `#N` line) and the last `cov:`
/// figure of a libFuzzer log.
pub fn final_stats(log: &str) -> (u64, u64) {
    let number_after = |line: &str, key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let mut execs = 0;
    let mut cov = 0;
    for line in log.lines() {
        if let Some(n) = number_after(line, "stat::number_of_executed_units:") {
            execs = n;
        } else if line.starts_with('#') {
            if let Some(n) = number_after(line, "#") {
                execs = execs.max(n);
            }
        }
        if let Some(n) = number_after(line, "cov:") {
            cov = n;
        }
    }
    (execs, cov)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stats_read_a_libfuzzer_log() {
        let log = "#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #4096\tpulse  cov: 52 ft: 80 corp: 9/40b lim: 4 exec/s: 2048 rss: 31Mb\n\
                   #5000\tDONE   cov: 57 ft: 90 corp: 10/41b lim: 4 exec/s: 2500 rss: 31Mb\n\
                   stat::number_of_executed_units: 5003\n";
        assert_eq!(final_stats(log), (5003, 57));
        assert_eq!(final_stats(""), (0, 0));
    }

    #[test]
    fn unknown_targets_are_named() {
        let e = select(&["nope".into()]).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("kernel_spec"), "{e}");
        assert_eq!(select(&[]).unwrap().len(), TARGETS.len());
    }
}
