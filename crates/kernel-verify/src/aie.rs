//! Runs a rendered MLIR-AIE design through the `aie-opt` passes that aiecc runs before core
//! compilation, where an mlir-aie install is present. Any diagnostic fails the design.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The pass stages aiecc runs before core compilation, in its order and with its default
/// options (mlir-aie's `python/compiler/aiecc/main.py`, -O2, as of the LLVM-22 era, checked
/// against mlir-aie c668d2cb): resource allocation, routing, and the lowering of the runtime
/// sequence to NPU instructions. `{target}` is the core architecture (`aie2` / `aie2p`).
pub const STAGES: [(&str, &str); 3] = [
    (
        "resource allocation (object FIFOs, locks, BDs, buffer addresses)",
        "builtin.module(convert-vector-to-aievec{aie-target={target} target-backend=llvmir},\
         lower-affine,aie-canonicalize-device,aie.device(aie-trace-to-config,\
         aie-trace-pack-reg-writes,aie-inline-trace-config,aie-assign-lock-ids,\
         aie-register-objectFifos,aie-objectFifo-stateful-transform{dynamic-objFifos=0 \
         packet-sw-objFifos=0},aie-assign-bd-ids,aie-lower-cascade-flows,\
         aie-lower-broadcast-packet,aie-lower-multicast,aie-assign-tile-controller-ids,\
         aie-generate-column-control-overlay{route-shim-to-tile-ctrl=0},\
         aie-assign-buffer-addresses,aie-vector-transfer-lowering{max-transfer-rank=1}),\
         convert-scf-to-cf)",
    ),
    (
        "routing (pathfinder flows)",
        "builtin.module(aie.device(aie-create-pathfinder-flows))",
    ),
    (
        "runtime sequence to NPU instructions",
        "builtin.module(aie-materialize-runtime-sequences,aie.device(aie-materialize-bd-chains,\
         aie-substitute-shim-dma-allocations,aie-assign-runtime-sequence-bd-ids,\
         aie-dma-tasks-to-npu,aie-dma-to-npu,aie-lower-set-lock))",
    ),
];

/// The core architecture aiecc targets for an `aie.device(...)` name.
pub fn core_target(device: kernel_spec::Device) -> &'static str {
    match device {
        kernel_spec::Device::Npu1 => "aie2",
        kernel_spec::Device::Npu2 => "aie2p",
    }
}

/// Where `aie-opt` is, or why it is not used.
pub enum AieOpt {
    Found(PathBuf),
    Missing(String),
}

/// `AIE_OPT`, then `$MLIR_AIE_INSTALL_DIR/bin/aie-opt`, then `aie-opt` on `PATH`.
pub fn find_aie_opt() -> AieOpt {
    if let Some(p) = std::env::var_os("AIE_OPT") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            AieOpt::Found(p)
        } else {
            AieOpt::Missing(format!(
                "AIE_OPT={} is not a file; point it at mlir-aie's bin/aie-opt",
                p.display()
            ))
        };
    }
    if let Some(dir) = std::env::var_os("MLIR_AIE_INSTALL_DIR") {
        let p = Path::new(&dir).join("bin/aie-opt");
        return if p.is_file() {
            AieOpt::Found(p)
        } else {
            AieOpt::Missing(format!(
                "MLIR_AIE_INSTALL_DIR={} has no bin/aie-opt",
                Path::new(&dir).display()
            ))
        };
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("aie-opt");
            if p.is_file() {
                return AieOpt::Found(p);
            }
        }
    }
    AieOpt::Missing(
        "no aie-opt found (set AIE_OPT or MLIR_AIE_INSTALL_DIR, or put mlir-aie's bin on PATH)"
            .into(),
    )
}

/// Lines of aie-opt's stderr that are MLIR diagnostics.
fn diagnostics(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("error:") || l.contains("warning:"))
        .collect()
}

/// Runs every stage on `design` (an MLIR-AIE module for a core architecture `target`, see
/// [`core_target`]) in `workdir`; the first stage with a non-zero exit or any error/warning
/// diagnostic fails with its stage name and last lines. Where `aie-translate` sits beside
/// `aie-opt`, the NPU instructions are then serialised as aiecc does (`insts.bin`).
pub fn check_design(
    aie_opt: &Path,
    design: &str,
    target: &str,
    workdir: &Path,
) -> Result<(), String> {
    let mut input = workdir.join("design.mlir");
    std::fs::write(&input, design).map_err(|e| format!("{}: {e}", input.display()))?;
    for (i, (stage, pipeline)) in STAGES.iter().enumerate() {
        let output = workdir.join(format!("stage{}.mlir", i + 1));
        let mut cmd = Command::new(aie_opt);
        cmd.arg(format!(
            "--pass-pipeline={}",
            pipeline.replace("{target}", target)
        ))
        .arg(&input)
        .arg("-o")
        .arg(&output);
        run_tool(&mut cmd, stage, &input)?;
        input = output;
    }
    let translate = aie_opt.with_file_name("aie-translate");
    if translate.is_file() {
        let device = device_symbol(design).unwrap_or("main");
        let mut cmd = Command::new(&translate);
        cmd.arg("--aie-npu-to-binary")
            .arg(format!("--aie-device-name={device}"))
            .arg(&input)
            .arg("-o")
            .arg(workdir.join("insts.bin"));
        run_tool(
            &mut cmd,
            "NPU instructions to binary (aie-translate)",
            &input,
        )?;
    }
    Ok(())
}

/// The symbol of `aie.device(npu1) @name {`, if the design names its device.
fn device_symbol(design: &str) -> Option<&str> {
    let line = design.lines().find(|l| l.contains("aie.device("))?;
    let after = line.split_once(") @")?.1;
    after.split_whitespace().next()
}

/// Runs one tool invocation; fails on a non-zero exit or any error/warning diagnostic.
fn run_tool(cmd: &mut Command, stage: &str, input: &Path) -> Result<(), String> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {tool}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let diags = diagnostics(&stderr);
    if !out.status.success() || !diags.is_empty() {
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "stage \"{stage}\" failed ({}, {} diagnostics); input kept in {}:\n{}",
            out.status,
            diags.len(),
            input.display(),
            tail.join("\n")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_are_found() {
        let s = "design.mlir:3:5: error: 'aie.tile' op ...\nnote: see\ndesign.mlir:9:1: warning: unused\n";
        assert_eq!(diagnostics(s).len(), 2);
        assert!(diagnostics("all fine\n").is_empty());
    }

    #[test]
    fn missing_aie_opt_file_is_reported() {
        // Only the explicit-path branch is tested: it does not depend on the machine.
        let dir = tempfile::tempdir().unwrap();
        let bogus = dir.path().join("no-such-aie-opt");
        // No other test of this binary reads AIE_OPT, so setting it here races with nothing.
        std::env::set_var("AIE_OPT", &bogus);
        let found = find_aie_opt();
        std::env::remove_var("AIE_OPT");
        match found {
            AieOpt::Missing(why) => assert!(why.contains("AIE_OPT"), "{why}"),
            AieOpt::Found(p) => panic!("found {}", p.display()),
        }
    }

    /// The stage driver against stand-in executables (shell scripts taking aie-opt's
    /// arguments), which checks the chaining of stages and that any diagnostic fails the
    /// design; the real passes need an mlir-aie install.
    #[test]
    fn stages_chain_and_diagnostics_fail() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(
                &p,
                format!("#!/bin/sh\n# args: --pass-pipeline=P INPUT -o OUTPUT\n{body}\n"),
            )
            .unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let copy = script("copy", "cp \"$2\" \"$4\"");
        let work = tempfile::tempdir().unwrap();
        check_design(&copy, "module {}", "aie2", work.path()).unwrap();
        assert!(work
            .path()
            .join(format!("stage{}.mlir", STAGES.len()))
            .is_file());

        let warn = script(
            "warn",
            "cp \"$2\" \"$4\"; echo \"$2:1:1: warning: odd\" >&2",
        );
        let work = tempfile::tempdir().unwrap();
        let err = check_design(&warn, "module {}", "aie2", work.path()).unwrap_err();
        assert!(
            err.contains(STAGES[0].0) && err.contains("warning: odd"),
            "{err}"
        );

        let fail = script("fail", "exit 3");
        let work = tempfile::tempdir().unwrap();
        let err = check_design(&fail, "module {}", "aie2", work.path()).unwrap_err();
        assert!(err.contains("exit status: 3"), "{err}");
    }
}
