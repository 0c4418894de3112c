//! One system's run in a process of its own: whole-process wall time (model loading included)
//! and peak resident memory, measured from outside by the parent, plus what the process itself
//! reports as JSON on stdout (transcription time with loading excluded, and the texts).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

/// A child's JSON report and the parent's measurements of it.
pub struct Measured {
    pub report: serde_json::Value,
    /// Start to exit, loading included.
    pub process_seconds: f64,
    /// Peak resident set size (`ru_maxrss`), MiB.
    pub peak_rss_mib: f64,
}

/// Runs `cmd` to completion; its stdout must be one JSON value.
pub fn measure(mut cmd: Command, what: &str) -> anyhow::Result<Measured> {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let _ = stderr.read_to_end(&mut err);
        err
    });
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_end(&mut out)
        .with_context(|| format!("reading the output of {what}"))?;
    let (status, rss_kib) = wait_with_rusage(child.id())?;
    let process_seconds = start.elapsed().as_secs_f64();
    let err = err_reader.join().unwrap_or_default();
    if !status_ok(status) {
        bail!(
            "{what} failed (wait status {status}):\n{}",
            String::from_utf8_lossy(&err)
        );
    }
    let report = serde_json::from_slice(&out)
        .with_context(|| format!("reading the JSON report of {what}"))?;
    Ok(Measured {
        report,
        process_seconds,
        peak_rss_mib: rss_kib as f64 / 1024.0,
    })
}

/// Waits for `pid` and returns its wait status and peak RSS in KiB (Linux reports KiB).
fn wait_with_rusage(pid: u32) -> anyhow::Result<(i32, i64)> {
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child, not yet reaped (std's Child was not waited on).
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r == pid as libc::pid_t {
            return Ok((status, usage.ru_maxrss));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("waiting for a benchmark process");
        }
    }
}

fn status_ok(status: i32) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}
