//! Two `build` runs in two processes on one tree: both succeed, the tree stays valid.
//!
//! The test re-runs this test binary twice with `KERNEL_BUILD_CHILD_ROOT` set; in the children,
//! `child_build` (ignored in normal runs) performs the build.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use kernel_build::stamp::verify_dir;

const ROOT_VAR: &str = "KERNEL_BUILD_CHILD_ROOT";

#[test]
#[ignore = "helper: run by two_processes_build_one_tree in child processes"]
fn child_build() {
    let Some(root) = std::env::var_os(ROOT_VAR).map(PathBuf::from) else {
        eprintln!("child_build only works as a child of two_processes_build_one_tree; skipped");
        return;
    };
    let mut opts = kernel_build::BuildOptions::new(&root);
    opts.emit_only = true;
    opts.progress = false;
    opts.toolchain_env = kernel_build::ToolchainEnv::default();
    let r = build_ok(&opts);
    println!(
        "CHILD-REPORT built={} up_to_date={}",
        r.built(),
        r.up_to_date()
    );
}

#[test]
fn two_processes_build_one_tree() {
    let t = real_tree();
    let exe = std::env::current_exe().unwrap();
    let spawn = || {
        Command::new(&exe)
            .args(["--exact", "child_build", "--ignored", "--nocapture"])
            .env(ROOT_VAR, t.root())
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap(), b.join().unwrap())
    });
    let parse = |o: &std::process::Output| -> (usize, usize) {
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "child failed:\n{text}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("CHILD-REPORT"))
            .unwrap_or_else(|| panic!("no report in:\n{text}"));
        let num = |k: &str| -> usize {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .unwrap()
                .parse()
                .unwrap()
        };
        (num("built="), num("up_to_date="))
    };
    let (ba, ua) = parse(&a);
    let (bb, ub) = parse(&b);
    let m = load_manifest(&t.out());
    let n = m.kernels.len();
    assert!(n > 0);
    // The lock serialises the runs: every kernel is built once, by one of them.
    assert_eq!(ba + bb, n);
    assert_eq!(ua + ub, n);
    for k in &m.kernels {
        verify_dir(&t.root().join(&k.dir), &k.name, &k.hash).unwrap();
    }
}
