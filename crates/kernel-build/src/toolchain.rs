//! Finding and driving the NPU toolchain: aiecc (mlir-aie) and Peano (llvm-aie clang++).

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use xshell::{cmd, Shell};

use crate::fsutil::sha256_file;

/// Toolchain identity used in place of a real toolchain when kernels are only rendered.
pub const EMIT_ONLY_IDENTITY: &str = "emit-only";

/// Warnings that the AIE API headers trigger and the mlir-aie examples silence too.
const WARNING_FLAGS: &[&str] = &[
    "-Wno-parentheses",
    "-Wno-attributes",
    "-Wno-macro-redefined",
    "-Wno-empty-body",
];

/// Where to look for the tools; normally the process environment, explicit in tests.
#[derive(Debug, Clone, Default)]
pub struct ToolchainEnv {
    /// `MLIR_AIE_INSTALL_DIR`: an mlir-aie install (wheel `mlir_aie/` dir or build `install/`).
    pub mlir_aie_install_dir: Option<PathBuf>,
    /// `PEANO_INSTALL_DIR`: a Peano (llvm-aie) install with `bin/clang++`.
    pub peano_install_dir: Option<PathBuf>,
    /// `PATH`, searched for `aiecc.py` / `aiecc` when `MLIR_AIE_INSTALL_DIR` is unset.
    pub path: Option<OsString>,
}

impl ToolchainEnv {
    pub fn from_process() -> ToolchainEnv {
        let nonempty = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        ToolchainEnv {
            mlir_aie_install_dir: nonempty("MLIR_AIE_INSTALL_DIR"),
            peano_install_dir: nonempty("PEANO_INSTALL_DIR"),
            path: std::env::var_os("PATH"),
        }
    }
}

/// A found toolchain.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub aiecc: PathBuf,
    pub aiecc_version: String,
    /// The mlir-aie install: `include/aie_api/`, `aie_runtime_lib/`.
    pub mlir_aie_dir: PathBuf,
    pub peano_dir: PathBuf,
    pub clang: PathBuf,
    pub clang_version: String,
    path_env: Option<OsString>,
}

fn is_executable_file(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

fn search_path(path: Option<&OsString>, names: &[&str]) -> Option<PathBuf> {
    let path = path?;
    for dir in std::env::split_paths(path) {
        for n in names {
            let c = dir.join(n);
            if is_executable_file(&c) {
                return Some(c);
            }
        }
    }
    None
}

/// The message shown when a compile was asked for and the toolchain is not complete.
pub fn missing_toolchain_message(problems: &[String]) -> String {
    let mut m = String::from("cannot compile NPU kernels: the toolchain is not installed here.\n");
    for p in problems {
        m.push_str("  - ");
        m.push_str(p);
        m.push('\n');
    }
    m.push_str(
        "Install it (see the mlir-aie README, \"Getting started for AMD Ryzen AI on Linux\"):\n\
         \x20 - mlir-aie (aiecc): the `mlir_aie` Python wheel from the mlir-aie releases, then\n\
         \x20   `export MLIR_AIE_INSTALL_DIR=<site-packages>/mlir_aie` (or put its bin/ with aiecc.py on PATH)\n\
         \x20 - Peano (llvm-aie clang++): the `llvm-aie` Python wheel from the llvm-aie releases, then\n\
         \x20   `export PEANO_INSTALL_DIR=<site-packages>/llvm-aie`\n\
         Or run `cargo xtask build-kernels --emit-only`: it renders and checks every kernel and writes\n\
         the manifest without compiling.",
    );
    m
}

fn run_capture(sh: &Shell, program: &Path, arg: &str) -> Option<String> {
    let out = cmd!(sh, "{program} {arg}")
        .quiet()
        .ignore_status()
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    Some(s)
}

/// Look for aiecc and Peano. Returns every problem found when something is missing.
pub fn detect(env: &ToolchainEnv) -> Result<Toolchain, Vec<String>> {
    let mut problems = Vec::new();
    let aiecc = match &env.mlir_aie_install_dir {
        Some(dir) => {
            let found = ["aiecc.py", "aiecc"]
                .iter()
                .map(|n| dir.join("bin").join(n))
                .find(|p| is_executable_file(p));
            if found.is_none() {
                problems.push(format!(
                    "MLIR_AIE_INSTALL_DIR={} has no executable bin/aiecc.py or bin/aiecc",
                    dir.display()
                ));
            }
            found
        }
        None => {
            let found = search_path(env.path.as_ref(), &["aiecc.py", "aiecc"]);
            if found.is_none() {
                problems.push(
                    "aiecc (mlir-aie) not found: MLIR_AIE_INSTALL_DIR is unset and neither aiecc.py \
                     nor aiecc is on PATH"
                        .to_string(),
                );
            }
            found
        }
    };
    let install = aiecc
        .as_ref()
        .and_then(|a| match &env.mlir_aie_install_dir {
            Some(d) => Some(d.clone()),
            None => Some(fs::canonicalize(a).ok()?.parent()?.parent()?.to_path_buf()),
        });
    if let Some(install) = &install {
        let inc = install.join("include");
        if !inc.join("aie_api").is_dir() {
            problems.push(format!(
                "the AIE API headers are missing: {} does not exist (set MLIR_AIE_INSTALL_DIR to the \
                 mlir-aie install that holds include/aie_api)",
                inc.join("aie_api").display()
            ));
        }
    }
    let clang = match &env.peano_install_dir {
        Some(dir) => {
            let c = dir.join("bin").join("clang++");
            if is_executable_file(&c) {
                Some(c)
            } else {
                problems.push(format!(
                    "PEANO_INSTALL_DIR={} has no executable bin/clang++",
                    dir.display()
                ));
                None
            }
        }
        None => {
            problems.push("Peano (llvm-aie) not found: PEANO_INSTALL_DIR is unset".to_string());
            None
        }
    };
    let (Some(aiecc), Some(install), Some(clang), true) =
        (aiecc, install, clang, problems.is_empty())
    else {
        return Err(problems);
    };
    let sh = Shell::new().map_err(|e| vec![format!("cannot start a shell: {e}")])?;
    // The version text names the tool build; fall back to the file's bytes when `--version` fails.
    let aiecc_version = match run_capture(&sh, &aiecc, "--version") {
        Some(v) => v.trim().to_string(),
        None => match sha256_file(&aiecc) {
            Ok(h) => format!("sha256 of {}: {h}", aiecc.display()),
            Err(e) => return Err(vec![format!("cannot read {}: {e}", aiecc.display())]),
        },
    };
    let clang_version = match run_capture(&sh, &clang, "--version") {
        // Drop the lines that only name where it is installed.
        Some(v) => v
            .lines()
            .filter(|l| !l.starts_with("InstalledDir") && !l.starts_with("Configuration file"))
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_string(),
        None => {
            return Err(vec![format!(
                "{} --version failed: the Peano install is broken",
                clang.display()
            )])
        }
    };
    let peano_dir = clang
        .parent()
        .and_then(Path::parent)
        .expect("clang++ is <dir>/bin/clang++")
        .to_path_buf();
    Ok(Toolchain {
        aiecc,
        aiecc_version,
        mlir_aie_dir: install,
        peano_dir,
        clang,
        clang_version,
        path_env: env.path.clone(),
    })
}

/// Peano's target triple for a device.
pub fn peano_target(device: &str) -> Option<&'static str> {
    match device {
        "npu1" => Some("aie2-none-unknown-elf"),
        "npu2" => Some("aie2p-none-unknown-elf"),
        _ => None,
    }
}

/// Peano flags for a device. `mlir_aie` is the mlir-aie install: its `include/` holds the AIE API,
/// `aie_runtime_lib/AIE2` / `AIE2P` the device math helpers (`lut_based_ops.h`, `vec_math.h`).
fn clang_flags(device: &str, mlir_aie: &Path) -> Option<Vec<String>> {
    let target = peano_target(device)?;
    let runtime_lib = if device == "npu2" { "AIE2P" } else { "AIE2" };
    let mut f = vec![
        format!("--target={target}"),
        "-O2".to_string(),
        "-std=c++20".to_string(),
        "-DNDEBUG".to_string(),
    ];
    f.extend(WARNING_FLAGS.iter().map(|s| s.to_string()));
    f.push("-I".to_string());
    f.push(mlir_aie.join("include").display().to_string());
    f.push("-I".to_string());
    f.push(
        mlir_aie
            .join("aie_runtime_lib")
            .join(runtime_lib)
            .display()
            .to_string(),
    );
    Some(f)
}

fn aiecc_flags(xclbin: &str, peano_dir: &Path) -> Vec<String> {
    vec![
        "--alloc-scheme=basic-sequential".to_string(),
        "--aie-generate-xclbin".to_string(),
        "--no-compile-host".to_string(),
        format!("--xclbin-name={xclbin}"),
        "--no-xchesscc".to_string(),
        "--no-xbridge".to_string(),
        "--peano".to_string(),
        peano_dir.display().to_string(),
        "--aie-generate-npu-insts".to_string(),
        "--npu-insts-name=insts.bin".to_string(),
    ]
}

impl Toolchain {
    /// The toolchain part of every kernel hash: tool versions and the flags used (not install
    /// paths, so that CI runners with different install locations share cache entries).
    pub fn identity(&self) -> String {
        let npu1 = clang_flags("npu1", Path::new("<mlir-aie>")).unwrap_or_default();
        let npu2 = clang_flags("npu2", Path::new("<mlir-aie>")).unwrap_or_default();
        format!(
            "aiecc (mlir-aie): {}\npeano clang++: {}\nclang flags npu1: {}\nclang flags npu2: {}\naiecc flags: {}",
            self.aiecc_version,
            self.clang_version,
            npu1.join(" "),
            npu2.join(" "),
            aiecc_flags("<name>.xclbin", Path::new("<peano>")).join(" ")
        )
    }
}

/// Why a compile failed: the log path (inside the staging dir) and its last lines.
#[derive(Debug)]
pub struct CompileFailure {
    pub summary: String,
    pub log: String,
}

/// Name of the object file the design links for `source` (`mm.cc` -> `mm.o`, or `mm.cc.o` when
/// that is what design.mlir names).
pub fn object_name(design: &str, source: &str) -> String {
    let long = format!("{source}.o");
    if design.contains(&format!("\"{long}\"")) {
        return long;
    }
    let stem = source.rsplit_once('.').map(|(s, _)| s).unwrap_or(source);
    format!("{stem}.o")
}

fn append_log(log: &mut String, program: &Path, args: &[String], out: &Output) {
    log.push_str(&format!("$ {} {}\n", program.display(), args.join(" ")));
    log.push_str(&String::from_utf8_lossy(&out.stdout));
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    log.push_str(&format!("[{}]\n\n", out.status));
}

impl Toolchain {
    /// Compile one kernel inside `dir`, which holds the rendered `design.mlir` and `*.cc` files:
    /// Peano builds each `.cc` into the object design.mlir links, then aiecc produces
    /// `<name>.xclbin` and `insts.bin`. The full log of every command is returned (to be written
    /// as `build.log`) on success and failure alike.
    pub fn compile(
        &self,
        dir: &Path,
        name: &str,
        device: &str,
        design_file: &str,
    ) -> Result<String, CompileFailure> {
        let mut log = String::new();
        let fail = |summary: String, log: String| CompileFailure { summary, log };
        let Some(cflags) = clang_flags(device, &self.mlir_aie_dir) else {
            return Err(fail(format!("unknown device {device:?}"), log));
        };
        let sh = match Shell::new() {
            Ok(sh) => sh,
            Err(e) => return Err(fail(format!("cannot start a shell: {e}"), log)),
        };
        sh.change_dir(dir);
        let design = match fs::read_to_string(dir.join(design_file)) {
            Ok(d) => d,
            Err(e) => return Err(fail(format!("cannot read {design_file}: {e}"), log)),
        };
        let mut sources: Vec<String> = match fs::read_dir(dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".cc") || n.ends_with(".cpp"))
                .collect(),
            Err(e) => return Err(fail(format!("cannot list {}: {e}", dir.display()), log)),
        };
        sources.sort();
        let clang = &self.clang;
        for src in &sources {
            let obj = object_name(&design, src);
            let mut args = cflags.clone();
            args.extend(["-c".to_string(), src.clone(), "-o".to_string(), obj]);
            let a = &args;
            let mut c = cmd!(sh, "{clang} {a...}").quiet().ignore_status();
            if let Some(p) = &self.path_env {
                c = c.env("PATH", p);
            }
            let out = match c.output() {
                Ok(o) => o,
                Err(e) => return Err(fail(format!("cannot run {}: {e}", clang.display()), log)),
            };
            append_log(&mut log, clang, &args, &out);
            if !out.status.success() {
                return Err(fail(format!("Peano failed on {src} ({})", out.status), log));
            }
        }
        let xclbin = format!("{name}.xclbin");
        let mut args = aiecc_flags(&xclbin, &self.peano_dir);
        args.push(design_file.to_string());
        let aiecc = &self.aiecc;
        let a = &args;
        let mut c = cmd!(sh, "{aiecc} {a...}").quiet().ignore_status();
        if let Some(p) = &self.path_env {
            c = c.env("PATH", p);
        }
        let out = match c.output() {
            Ok(o) => o,
            Err(e) => return Err(fail(format!("cannot run {}: {e}", aiecc.display()), log)),
        };
        append_log(&mut log, aiecc, &args, &out);
        if !out.status.success() {
            return Err(fail(format!("aiecc failed ({})", out.status), log));
        }
        for f in [xclbin.as_str(), "insts.bin"] {
            let ok = fs::metadata(dir.join(f))
                .map(|m| m.is_file() && m.len() > 0)
                .unwrap_or(false);
            if !ok {
                return Err(fail(
                    format!("aiecc reported success but wrote no {f}"),
                    log,
                ));
            }
        }
        // aiecc's working directory (core ELFs, CDOs, lowered MLIR) is large and rebuilt on demand.
        let _ = fs::remove_dir_all(dir.join(format!("{design_file}.prj")));
        Ok(log)
    }
}

/// The last `n` lines of a log.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_installed_names_every_missing_part() {
        let err = detect(&ToolchainEnv::default()).unwrap_err();
        assert!(err.iter().any(|p| p.contains("aiecc")), "{err:?}");
        assert!(
            err.iter().any(|p| p.contains("PEANO_INSTALL_DIR")),
            "{err:?}"
        );
        let msg = missing_toolchain_message(&err);
        assert!(msg.contains("--emit-only"));
        assert!(msg.contains("MLIR_AIE_INSTALL_DIR"));
    }

    #[test]
    fn install_dirs_without_tools_are_reported() {
        let t = tempfile::tempdir().unwrap();
        let env = ToolchainEnv {
            mlir_aie_install_dir: Some(t.path().join("mlir_aie")),
            peano_install_dir: Some(t.path().join("llvm-aie")),
            path: None,
        };
        let err = detect(&env).unwrap_err();
        assert!(err.iter().any(|p| p.contains("bin/aiecc.py")), "{err:?}");
        assert!(err.iter().any(|p| p.contains("bin/clang++")), "{err:?}");
    }

    #[test]
    fn object_names_follow_the_design() {
        assert_eq!(object_name("link_with = \"mm.o\"", "mm.cc"), "mm.o");
        assert_eq!(object_name("link_with = \"mm.cc.o\"", "mm.cc"), "mm.cc.o");
        assert_eq!(peano_target("npu2"), Some("aie2p-none-unknown-elf"));
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
    }
}
