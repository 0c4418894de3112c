//! `cargo xtask build-kernels`: a thin CLI over the `kernel-build` crate.

use std::path::{Path, PathBuf};

use kernel_build::{BuildOptions, Prune, ToolchainEnv};

#[derive(clap::Args)]
pub struct Args {
    /// Render and check every kernel and write the manifest, without aiecc/Peano.
    #[arg(long)]
    emit_only: bool,
    /// Kernel spec directory.
    #[arg(long, value_name = "DIR")]
    specs: Option<PathBuf>,
    /// Template directory.
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// Output directory (artifacts and manifest.json).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Kernels built in parallel (0 = one per core).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 0)]
    jobs: usize,
    /// Build only kernels whose name contains this.
    #[arg(long, value_name = "SUBSTR")]
    filter: Option<String>,
    /// Print `name hash` per kernel and a combined key (for CI cache keys); build nothing.
    #[arg(long)]
    print_hashes: bool,
    /// Artifact cache: restore verified entries from it before building, save new builds after.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Remove every hash directory of a built kernel other than the current one.
    #[arg(long)]
    prune: bool,
    /// With --prune: keep the N newest old hash directories of each kernel.
    #[arg(long, value_name = "N", requires = "prune")]
    keep: Option<usize>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut root = workspace_root();
    // From the workspace root (the usual case), name files relatively in messages and the manifest.
    if let (Ok(cwd), Ok(r)) = (std::env::current_dir(), root.canonicalize()) {
        if cwd.canonicalize().is_ok_and(|c| c == r) {
            root = PathBuf::new();
        }
    }
    let mut opts = BuildOptions::new(&root);
    // Paths given on the command line are relative to the current directory; defaults to the root.
    if let Some(p) = args.specs {
        opts.specs_dir = p;
    }
    if let Some(p) = args.templates {
        opts.templates_dir = p;
    }
    if let Some(p) = args.out {
        opts.out_dir = p;
    }
    opts.emit_only = args.emit_only;
    opts.jobs = args.jobs;
    opts.filter = args.filter;
    opts.cache_dir = args.cache_dir;
    opts.prune = if args.prune {
        Prune::KeepNewest(args.keep.unwrap_or(0))
    } else {
        Prune::None
    };
    opts.toolchain_env = ToolchainEnv::from_process();

    if args.print_hashes {
        let listing = kernel_build::hashes(&opts)?;
        println!("{listing}");
        return Ok(());
    }
    let report = kernel_build::build(&opts)?;
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    println!("{report}");
    println!("manifest: {}", report.manifest_path.display());
    Ok(())
}

/// Renders every kernel of the workspace (`--emit-only`, nothing is compiled; up-to-date
/// kernels cost only their hash) and returns the manifest: what `--backend emu` runs.
pub fn emitted_manifest() -> anyhow::Result<PathBuf> {
    let mut opts = BuildOptions::new(&workspace_root());
    opts.emit_only = true;
    opts.toolchain_env = ToolchainEnv::from_process();
    let report = kernel_build::build(&opts)?;
    Ok(report.manifest_path)
}

/// The workspace's `generated/manifest.json`, if `build-kernels` has written one.
pub fn built_manifest() -> Option<PathBuf> {
    let p = workspace_root().join("generated/manifest.json");
    p.exists().then_some(p)
}
