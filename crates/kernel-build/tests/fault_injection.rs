//! Faults injected into real builds of a temp copy of the project's specs and templates (never
//! the repo's `generated/`):
//! - a build process killed with SIGKILL at random points leaves every `<name>/<hash>/` directory
//!   complete (its stamp verifies), `manifest.json` absent or valid, and the next run builds
//!   exactly the kernels that are missing;
//! - a full disk during a build (simulated with `setrlimit(RLIMIT_FSIZE)` in the child, SIGXFSZ
//!   ignored, so writes past the limit fail with EFBIG as they would with ENOSPC) is a clear error
//!   naming the file, and leaves the previous manifest and artifacts as they were.
//!
//! The builds run in child processes: this test binary re-run with `FAULT_CHILD_ROOT` set, where
//! the ignored test `child_build` builds.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use kernel_build::stamp::verify_dir;
use kernel_build::BuildOptions;

const ROOT_VAR: &str = "FAULT_CHILD_ROOT";

fn opts(root: &Path) -> BuildOptions {
    let mut o = BuildOptions::new(root);
    o.emit_only = true;
    o.progress = false;
    o.jobs = 2;
    o.toolchain_env = kernel_build::ToolchainEnv::default();
    // Rendering and writing are what a kill interrupts; emulating each design only slows the
    // test (tests/emulation.rs covers it).
    o.emulate = false;
    o
}

#[test]
#[ignore = "helper: run by the fault-injection tests in child processes"]
fn child_build() {
    let Some(root) = std::env::var_os(ROOT_VAR).map(PathBuf::from) else {
        eprintln!("child_build only works as a child of the fault-injection tests; skipped");
        return;
    };
    match kernel_build::build(&opts(&root)) {
        Ok(r) => println!(
            "CHILD-REPORT built={} up_to_date={}",
            r.built(),
            r.up_to_date()
        ),
        Err(e) => {
            eprintln!("CHILD-ERROR {e}");
            std::process::exit(3);
        }
    }
}

fn child(root: &Path, max_file_bytes: Option<u64>) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_build", "--ignored", "--nocapture"])
        .env(ROOT_VAR, root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(limit) = max_file_bytes {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
    }
    cmd
}

/// A small xorshift generator; the seed is printed so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The tree is consistent: every hash directory of a kernel verifies against its stamp, the
/// manifest is absent or parses and names only verified directories. Returns the names of the
/// kernels whose current artifact is complete.
fn check_consistent(t: &Tree, current: &[(String, String)]) -> Vec<String> {
    let out = t.out();
    for e in std::fs::read_dir(&out).into_iter().flatten() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !e.file_type().unwrap().is_dir() {
            continue;
        }
        for h in std::fs::read_dir(e.path()).unwrap() {
            let h = h.unwrap();
            let hash = h.file_name().to_string_lossy().into_owned();
            verify_dir(&h.path(), &name, &hash)
                .unwrap_or_else(|why| panic!("{name}/{hash} is not a complete artifact: {why}"));
        }
    }
    let manifest = out.join("manifest.json");
    if manifest.exists() {
        let m = kernel_spec::manifest::Manifest::load(&manifest)
            .unwrap_or_else(|e| panic!("manifest.json is in place but invalid: {e}"));
        for k in &m.kernels {
            verify_dir(&t.root().join(&k.dir), &k.name, &k.hash)
                .unwrap_or_else(|why| panic!("the manifest names {}: {why}", k.dir.display()));
        }
    }
    current
        .iter()
        .filter(|(n, h)| verify_dir(&out.join(n).join(h), n, h).is_ok())
        .map(|(n, _)| n.clone())
        .collect()
}

#[test]
fn sigkill_at_random_points_leaves_a_consistent_tree_and_the_next_run_builds_what_is_missing() {
    let t = real_tree();
    let current = hashes_ok(&opts(t.root())).kernels;
    let n = current.len();
    assert!(n > 10, "the real specs have many entries");

    // How long a whole build takes here, in a throwaway copy: kills are spread over it.
    let probe = real_tree();
    let started = Instant::now();
    let run = child(probe.root(), None).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let full = started.elapsed().as_millis().max(50) as u64;

    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("fault injection seed {seed}, a whole build takes {full} ms");
    let mut rng = Rng(seed);
    let mut killed_mid_build = 0;
    for round in 0..8 {
        // Every round has work to do: about half of the kernels' artifacts are deleted first,
        // with the manifest that named them.
        let _ = std::fs::remove_file(t.out().join("manifest.json"));
        for (name, _) in &current {
            if rng.below(2) == 0 {
                let _ = std::fs::remove_dir_all(t.out().join(name));
            }
        }
        let mut c: Child = child(t.root(), None).spawn().unwrap();
        // Anywhere in a whole build's time: rendering comes first, installing the finished
        // directories and writing the manifest last.
        let delay = rng.below(full + 1);
        std::thread::sleep(Duration::from_millis(delay));
        let finished = c.try_wait().unwrap().is_some();
        c.kill().unwrap(); // SIGKILL on Unix
        c.wait().unwrap();
        if !finished {
            killed_mid_build += 1;
        }
        let complete = check_consistent(&t, &current);
        eprintln!(
            "round {round}: killed after {delay} ms; {} of {n} kernels complete",
            complete.len()
        );
    }
    assert!(killed_mid_build > 0, "no kill landed inside a build");

    // The next run builds exactly what is missing and keeps what is complete.
    let complete = check_consistent(&t, &current).len();
    let run = child(t.root(), None).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = stdout
        .lines()
        .find(|l| l.starts_with("CHILD-REPORT"))
        .unwrap();
    assert_eq!(
        report,
        format!(
            "CHILD-REPORT built={} up_to_date={}",
            n - complete,
            complete
        )
    );
    assert_eq!(check_consistent(&t, &current).len(), n);
    assert_eq!(load_manifest(&t.out()).kernels.len(), n);
    // No staging directory is left behind once a build completes.
    let leftovers: Vec<_> = std::fs::read_dir(t.out())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_full_disk_during_a_build_is_a_clear_error_and_keeps_the_previous_build() {
    let t = real_tree();
    build_ok(&opts(t.root()));
    let manifest = t.out().join("manifest.json");
    let good = std::fs::read(&manifest).unwrap();
    let before = hashes_ok(&opts(t.root())).kernels;

    // A template change gives every matmul entry a new hash: they must be rebuilt.
    let tpl_dir = t.templates().join("matmul");
    let tpl = std::fs::read_dir(&tpl_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jinja"))
        .unwrap();
    let mut text = std::fs::read_to_string(&tpl).unwrap();
    text.push_str("{# a change #}\n");
    std::fs::write(&tpl, text).unwrap();
    let after = hashes_ok(&opts(t.root())).kernels;
    assert_ne!(before, after);

    // Every design is larger than 4 KiB: its write fails part-way.
    let run = child(t.root(), Some(4096)).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "the build must fail: {stderr}");
    let err = stderr
        .lines()
        .find(|l| l.starts_with("CHILD-ERROR"))
        .unwrap_or_else(|| panic!("no error reported: {stderr}"));
    assert!(
        err.contains("File too large") && err.contains(t.out().to_str().unwrap()),
        "the error must name the path and the cause: {err}"
    );
    // The previous manifest is untouched, and the tree is consistent.
    assert_eq!(std::fs::read(&manifest).unwrap(), good);
    check_consistent(&t, &before);
    let complete = check_consistent(&t, &after);
    let changed: Vec<_> = after.iter().filter(|k| !before.contains(k)).collect();
    assert!(!changed.is_empty());
    for (name, _) in &changed {
        assert!(
            !complete.contains(name),
            "{name} was built despite the full disk"
        );
    }

    // With space again, exactly the changed kernels are built.
    let run = child(t.root(), None).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "CHILD-REPORT built={} up_to_date={}",
            changed.len(),
            after.len() - changed.len()
        )),
        "{stdout}"
    );
}
