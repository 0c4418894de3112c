//! The toolchain-driving path, with stand-in tools that fail: a failing compile leaves no
//! artifact directory, keeps the full log and shows its last lines. (No stand-in ever produces an
//! xclbin: a successful compile needs the real aiecc and Peano.)

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use kernel_build::stamp::verify_dir;
use kernel_build::{Action, ArtifactStatus, BuildError, ToolchainEnv};

fn script(path: &Path, body: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A toolchain layout whose clang++ fails on every compile (printing 30 numbered lines) or,
/// with `clang_ok`, succeeds without output while aiecc succeeds without writing anything.
fn stand_in(root: &Path, clang_ok: bool) -> ToolchainEnv {
    let aie = root.join("mlir_aie");
    let peano = root.join("llvm-aie");
    fs::create_dir_all(aie.join("include/aie_api")).unwrap();
    script(
        &aie.join("bin/aiecc.py"),
        "if [ \"$1\" = --version ]; then echo 'stand-in aiecc 0.0'; exit 0; fi\necho aiecc ran; exit 0",
    );
    let compile = if clang_ok {
        "exit 0".to_string()
    } else {
        "i=0; while [ $i -lt 30 ]; do echo \"stand-in error line $i\" >&2; i=$((i+1)); done; exit 1"
            .to_string()
    };
    script(
        &peano.join("bin/clang++"),
        &format!(
            "if [ \"$1\" = --version ]; then echo 'stand-in clang 0.0'; exit 0; fi\n{compile}"
        ),
    );
    ToolchainEnv {
        mlir_aie_install_dir: Some(aie),
        peano_install_dir: Some(peano),
        path: None,
    }
}

fn files_named(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                v.extend(files_named(&p, suffix));
            } else if p.to_string_lossy().ends_with(suffix) {
                v.push(p);
            }
        }
    }
    v
}

#[test]
fn failing_compiler_keeps_log_and_leaves_no_artifact() {
    let t = small_tree();
    let env = stand_in(t.root(), false);
    // Emit first with the toolchain present: same hash as a compile, status emitted.
    let mut opts = t.opts();
    opts.toolchain_env = env.clone();
    let emitted = kernel_build::build(&opts).unwrap();
    assert!(emitted
        .kernels
        .iter()
        .all(|k| k.action == Action::Built(ArtifactStatus::Emitted)));
    let listing = kernel_build::hashes(&opts).unwrap();
    assert!(listing.toolchain.contains("stand-in aiecc 0.0"));
    assert!(listing.toolchain.contains("stand-in clang 0.0"));

    // A compile request does not accept the emitted directories: it compiles, and fails.
    opts.emit_only = false;
    let err = kernel_build::build(&opts).unwrap_err();
    let BuildError::KernelsFailed(fails) = &err else {
        panic!("expected kernel failures, got {err}")
    };
    assert_eq!(fails.len(), 3);
    for f in fails {
        assert!(f.summary.contains("Peano failed"), "{}", f.summary);
        assert!(f.log_tail.contains("stand-in error line 29"));
        assert!(!f.log_tail.contains("stand-in error line 5\n"));
        assert!(f.log_tail.lines().count() <= 20);
        let log = fs::read_to_string(f.log_path.as_ref().unwrap()).unwrap();
        assert!(log.contains("stand-in error line 0"));
        assert!(log.contains("--target=aie2"), "{log}");
        // The emitted directory is untouched and still valid.
        let stamp = verify_dir(&t.out().join(&f.name).join(&f.hash), &f.name, &f.hash).unwrap();
        assert_eq!(stamp.status, ArtifactStatus::Emitted);
    }
    let text = err.to_string();
    assert!(
        text.contains("3 kernel(s) failed") && text.contains("| "),
        "{text}"
    );
    assert!(files_named(&t.out(), ".xclbin").is_empty());
    // npu2 kernels are compiled for aie2p.
    let mm_b = fails.iter().find(|f| f.name == "mm_b").unwrap();
    let log = fs::read_to_string(mm_b.log_path.as_ref().unwrap()).unwrap();
    assert!(log.contains("--target=aie2p-none-unknown-elf"), "{log}");
    assert!(log.contains("aie_runtime_lib/AIE2P"), "{log}");
    assert!(log.contains("mlir_aie/include"), "{log}");
}

#[test]
fn aiecc_success_without_outputs_is_an_error() {
    let t = small_tree();
    let mut opts = t.opts();
    opts.toolchain_env = stand_in(t.root(), true);
    opts.emit_only = false;
    let err = kernel_build::build(&opts).unwrap_err();
    let BuildError::KernelsFailed(fails) = &err else {
        panic!("expected kernel failures, got {err}")
    };
    assert_eq!(fails.len(), 3);
    for f in fails {
        assert!(f.summary.contains("wrote no"), "{}", f.summary);
        assert!(!t.out().join(&f.name).join(&f.hash).exists());
        let log = fs::read_to_string(f.log_path.as_ref().unwrap()).unwrap();
        for flag in [
            "--aie-generate-xclbin",
            "--no-compile-host",
            "--no-xchesscc",
            "--no-xbridge",
            "--aie-generate-npu-insts",
            "--npu-insts-name=insts.bin",
            "--peano",
        ] {
            assert!(log.contains(flag), "{flag} missing from {log}");
        }
        assert!(log.contains(&format!("--xclbin-name={}.xclbin", f.name)));
    }
    assert!(files_named(&t.out(), ".xclbin").is_empty());
    // The manifest lists nothing: no kernel has a complete directory.
    assert!(load_manifest(&t.out()).kernels.is_empty());
}
