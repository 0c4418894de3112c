//! Every newly rendered design runs once in the dataflow emulator: its time estimate lands in
//! the manifest, and a design that cannot work fails the build, naming its line.

use std::path::{Path, PathBuf};

use kernel_build::{BuildOptions, ToolchainEnv};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const SPEC: &str = r#"
[[kernel]]
name = "ln_small"
device = "npu1"
dtype = "bf16"
rows = 16
dim = 64
eps = 1e-5
tiling = { tile_m = 8, columns = 1, rows = 2 }
"#;

/// Real templates (optionally edited) and one spec in a temporary tree.
fn tree(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("kernel-specs")).unwrap();
    std::fs::write(dir.path().join("kernel-specs/layernorm.toml"), SPEC).unwrap();
    for family in ["layernorm", "common"] {
        let from = workspace().join("templates").join(family);
        let to = dir.path().join("templates").join(family);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let text = std::fs::read_to_string(e.path()).unwrap();
            std::fs::write(to.join(e.file_name()), edit(&text)).unwrap();
        }
    }
    dir
}

fn opts(root: &Path) -> BuildOptions {
    let mut o = BuildOptions::new(root);
    o.emit_only = true;
    o.progress = false;
    o.toolchain_env = ToolchainEnv::default();
    o
}

#[test]
fn the_manifest_records_the_emulated_time() {
    let dir = tree(|t| t.to_string());
    let report = kernel_build::build(&opts(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    let m = kernel_spec::manifest::Manifest::load(&report.manifest_path).unwrap();
    let e = m.kernels[0]
        .emulated
        .as_ref()
        .expect("an emulated estimate");
    assert!(e.estimate_us > 0.0 && e.core_calls > 0, "{e:?}");
    assert!(e.max_queued_tasks <= 4, "{e:?}");
}

#[test]
fn a_design_that_cannot_work_fails_the_build() {
    // The runtime sequence never waits for the output: the array is not at rest afterwards.
    let dir = tree(|t| {
        t.replace(
            "{% include \"common/seq_ops.mlir.jinja\" %}",
            "{% include \"common/seq_ops.mlir.jinja\" %}\n      aiex.npu.dma_wait {symbol = @Y_out_0}",
        )
    });
    let err = kernel_build::build(&opts(dir.path())).expect_err("the build fails");
    let msg = err.to_string();
    assert!(
        msg.contains("ln_small") && msg.contains("emulator"),
        "{msg}"
    );
    assert!(
        msg.contains("design.mlir:"),
        "the message names the design's line: {msg}"
    );
    let generated = dir.path().join("generated/ln_small");
    let installed = std::fs::read_dir(&generated)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .count()
        })
        .unwrap_or(0);
    assert_eq!(installed, 0, "nothing half-built is installed");
}
