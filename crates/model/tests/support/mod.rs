//! Shared by the model's integration tests (each test file includes it with `mod support;`).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// Where skips are recorded; `cargo xtask test` empties it before the run and prints it after.
pub const SKIP_LOG: &str = "skipped-tests.txt";

/// Reports a check that cannot run on this machine. libtest hides what passing tests print, so
/// the reason also goes to `target/tmp/skipped-tests.txt`, which `cargo xtask test` shows at the
/// end of the run: a skip is never mistaken for a pass.
pub fn skip(reason: impl std::fmt::Display) {
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed)")
        .to_string();
    eprintln!("\n!!!! SKIPPED {test}: {reason} !!!!\n");
    let line = format!("{}::{test}: {reason}\n", env!("CARGO_CRATE_NAME"));
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(SKIP_LOG);
    // One write per line, so that tests skipping at once do not interleave.
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log) {
        let _ = f.write_all(line.as_bytes());
    }
}
