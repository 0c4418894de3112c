//! A whole `build-kernels` run: plan, lock, reuse what is up to date, restore from the artifact
//! cache, build the rest in parallel, save to the cache, prune, write the manifest.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::fsutil::{remove_stale_temps, write_atomic, StagingDir};
use crate::hash::{combined_key, generator_identity};
use crate::lock::DirLock;
use crate::plan::{plan, renderer_identity, Planned, Planner, RenderIndex, INDEX_FILE};
use crate::stamp::{verify_dir, ArtifactStatus, Stamp, STAMP_FILE};
use crate::toolchain::EMIT_ONLY_IDENTITY;
use crate::toolchain::{detect, missing_toolchain_message, tail, Toolchain, ToolchainEnv};
use crate::{manifest, BuildError, KernelFailure};
use kernel_spec::manifest::ManifestEntry;

/// Name of the rendered MLIR-AIE design among `Rendered.files`.
pub const DESIGN_FILE: &str = "design.mlir";
/// The tool log kept beside a compiled artifact.
pub const BUILD_LOG: &str = "build.log";
/// Lines of a failed tool's log shown in the error.
const LOG_TAIL_LINES: usize = 20;

/// What to do with hash directories of a kernel other than the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prune {
    /// Keep them all.
    None,
    /// Keep the newest `n` besides the current one (`0` removes every non-current one).
    KeepNewest(usize),
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub specs_dir: PathBuf,
    pub templates_dir: PathBuf,
    pub out_dir: PathBuf,
    /// Render and check only; never run the toolchain.
    pub emit_only: bool,
    /// Parallel kernel jobs; 0 = one per available core.
    pub jobs: usize,
    /// Build only kernels whose name contains this (the manifest still lists every built kernel).
    pub filter: Option<String>,
    /// Artifact cache: restore verified `<name>/<hash>` entries before building, save after.
    pub cache_dir: Option<PathBuf>,
    pub prune: Prune,
    pub toolchain_env: ToolchainEnv,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
    /// Run every newly rendered design once in the dataflow emulator before compiling it (a
    /// design that deadlocks or overruns is a build failure) and record its time estimate.
    /// Off only where the templates render no real design (kernel-build's own tests).
    pub emulate: bool,
}

impl BuildOptions {
    /// Defaults relative to `root`: `kernel-specs/`, `templates/`, `generated/`.
    pub fn new(root: &Path) -> BuildOptions {
        BuildOptions {
            specs_dir: root.join("kernel-specs"),
            templates_dir: root.join("templates"),
            out_dir: root.join("generated"),
            emit_only: false,
            jobs: 0,
            filter: None,
            cache_dir: None,
            prune: Prune::None,
            toolchain_env: ToolchainEnv::from_process(),
            progress: true,
            emulate: true,
        }
    }

    fn wanted(&self) -> ArtifactStatus {
        if self.emit_only {
            ArtifactStatus::Emitted
        } else {
            ArtifactStatus::Compiled
        }
    }

    fn selected(&self, name: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| name.contains(f))
    }
}

/// What happened to one kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    UpToDate,
    Restored,
    Built(ArtifactStatus),
    Failed,
}

#[derive(Debug, Clone)]
pub struct KernelOutcome {
    pub name: String,
    pub hash: String,
    pub action: Action,
}

#[derive(Debug)]
pub struct BuildReport {
    /// One per selected kernel, in spec order.
    pub kernels: Vec<KernelOutcome>,
    pub mode: ArtifactStatus,
    pub elapsed: Duration,
    pub manifest_path: PathBuf,
    /// Spec entries rendered in this run (of all, not only the selected): the others were known
    /// unchanged from the render index and cost only their hash check.
    pub rendered: usize,
    /// Things worth telling: corrupted directories or cache entries that were rebuilt, pruning.
    pub notes: Vec<String>,
}

impl BuildReport {
    fn count(&self, f: impl Fn(Action) -> bool) -> usize {
        self.kernels.iter().filter(|k| f(k.action)).count()
    }
    pub fn up_to_date(&self) -> usize {
        self.count(|a| a == Action::UpToDate)
    }
    pub fn built(&self) -> usize {
        self.count(|a| matches!(a, Action::Built(_)))
    }
    pub fn restored(&self) -> usize {
        self.count(|a| a == Action::Restored)
    }
    pub fn failed(&self) -> usize {
        self.count(|a| a == Action::Failed)
    }
}

impl fmt::Display for BuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} kernels: {} up to date, {} built ({}), {} restored from cache",
            self.kernels.len(),
            self.up_to_date(),
            self.built(),
            self.mode,
            self.restored()
        )?;
        if self.failed() > 0 {
            write!(f, ", {} failed", self.failed())?;
        }
        write!(f, " in {:.2}s", self.elapsed.as_secs_f64())
    }
}

/// `--print-hashes`: each kernel's hash and one combined key over all of them.
#[derive(Debug)]
pub struct HashListing {
    pub kernels: Vec<(String, String)>,
    pub combined: String,
    pub toolchain: String,
}

impl fmt::Display for HashListing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, h) in &self.kernels {
            writeln!(f, "{n} {h}")?;
        }
        write!(f, "combined {}", self.combined)
    }
}

/// The toolchain a run uses and the identity that enters the hashes. The identity depends only on
/// what is installed, not on `--emit-only`, so that an emit-only run and a compiling run on one
/// machine name the same directory: a compiled artifact then also serves `--emit-only`, and an
/// emitted one is upgraded in place by a compiling run.
fn toolchain_for(opts: &BuildOptions) -> Result<(Option<Toolchain>, String), BuildError> {
    match detect(&opts.toolchain_env) {
        Ok(tc) => {
            let id = tc.identity();
            Ok((Some(tc), id))
        }
        Err(problems) if !opts.emit_only => Err(BuildError::ToolchainMissing(
            missing_toolchain_message(&problems),
        )),
        Err(_) => Ok((None, EMIT_ONLY_IDENTITY.to_string())),
    }
}

fn thread_pool(jobs: usize) -> Result<rayon::ThreadPool, BuildError> {
    let n = if jobs == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        jobs
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| BuildError::Other(format!("cannot start {n} build threads: {e}")))
}

/// Hashes of every (selected) kernel, without building anything or taking the lock.
pub fn hashes(opts: &BuildOptions) -> Result<HashListing, BuildError> {
    // Never fail for a missing toolchain: a key is wanted on machines without one too.
    let identity = match detect(&opts.toolchain_env) {
        Ok(tc) => tc.identity(),
        Err(_) => EMIT_ONLY_IDENTITY.to_string(),
    };
    let pool = thread_pool(opts.jobs)?;
    let generator = generator_identity();
    // Read-only use of the render index: an up-to-date tree answers without rendering.
    let renderer = renderer_identity(&generator);
    let index = RenderIndex::load(&opts.out_dir, renderer.as_deref());
    let planner = Planner::new(
        &opts.templates_dir,
        &identity,
        &generator,
        renderer.as_deref(),
    );
    let planned = pool.install(|| plan(&opts.specs_dir, &planner, &index))?;
    let kernels: Vec<(String, String)> = planned
        .iter()
        .filter(|p| opts.selected(p.name()))
        .map(|p| (p.name().to_string(), p.hash.clone()))
        .collect();
    let combined = combined_key(kernels.iter().map(|(n, h)| (n.as_str(), h.as_str())));
    Ok(HashListing {
        kernels,
        combined,
        toolchain: identity,
    })
}

fn kernel_dir(root: &Path, name: &str, hash: &str) -> PathBuf {
    root.join(name).join(hash)
}

/// The staging directory of a fresh build: rendered files, then (when compiling) the tool outputs,
/// then the stamp.
fn build_one(
    p: &Planned,
    out: &Path,
    toolchain: Option<&Toolchain>,
    toolchain_id: &str,
    emulate: bool,
) -> Result<ArtifactStatus, KernelFailure> {
    let name = p.name();
    let failure = |summary: String| KernelFailure {
        name: name.to_string(),
        hash: p.hash.clone(),
        summary,
        log_path: None,
        log_tail: String::new(),
    };
    let staging = StagingDir::new(out, name).map_err(|e| failure(e.to_string()))?;
    let files = p
        .rendered
        .as_ref()
        .expect("kernels are rendered before they are built");
    for (fname, text) in files {
        if fname.contains(['/', '\\']) || fname == STAMP_FILE || fname == BUILD_LOG {
            return Err(failure(format!(
                "the renderer produced a file named {fname:?}, which cannot be stored"
            )));
        }
        let path = staging.path().join(fname);
        fs::write(&path, text).map_err(|e| failure(format!("{}: {e}", path.display())))?;
    }
    // The design must run in the emulator before it is worth compiling.
    let design = files
        .iter()
        .find(|(n, _)| n == DESIGN_FILE)
        .filter(|_| emulate);
    if let Some((_, design)) = design {
        let shown = out.join(name).join(&p.hash).join(DESIGN_FILE);
        let record = crate::emulate::emulate(&p.spec, &shown, design)
            .map_err(|e| failure(format!("the emulator rejects the design: {e}")))?;
        let path = staging.path().join(crate::emulate::EMULATION_FILE);
        let json = serde_json::to_string_pretty(&record).expect("plain data serialises");
        fs::write(&path, json).map_err(|e| failure(format!("{}: {e}", path.display())))?;
    }
    let status = match toolchain {
        None => ArtifactStatus::Emitted,
        Some(tc) => {
            match tc.compile(staging.path(), name, p.spec.device.as_str(), DESIGN_FILE) {
                Ok(log) => {
                    let path = staging.path().join(BUILD_LOG);
                    fs::write(&path, log)
                        .map_err(|e| failure(format!("{}: {e}", path.display())))?;
                }
                Err(cf) => {
                    // Keep the log where people look for it; the half-built directory goes away.
                    let log_path = out.join(name).join(format!("failed-{}.log", p.hash));
                    let kept = write_atomic(&log_path, cf.log.as_bytes()).is_ok();
                    return Err(KernelFailure {
                        log_path: kept.then_some(log_path),
                        log_tail: tail(&cf.log, LOG_TAIL_LINES),
                        ..failure(cf.summary)
                    });
                }
            }
            ArtifactStatus::Compiled
        }
    };
    Stamp::for_dir(
        staging.path(),
        name,
        &p.hash,
        status,
        &generator_identity(),
        toolchain_id,
    )
    .and_then(|s| s.write(staging.path()))
    .map_err(|e| failure(format!("cannot write the stamp: {e}")))?;
    staging
        .install(&kernel_dir(out, name, &p.hash))
        .map_err(|e| failure(e.to_string()))?;
    let _ = fs::remove_file(out.join(name).join(format!("failed-{}.log", p.hash)));
    Ok(status)
}

/// Copy the files a verified stamp lists (and the stamp) from `src` into a staging dir under
/// `dest_root`, verify the copy, and install it at `dest`.
fn copy_verified(
    src: &Path,
    dest_root: &Path,
    dest: &Path,
    name: &str,
    hash: &str,
) -> Result<(), String> {
    let stamp = verify_dir(src, name, hash)?;
    let staging = StagingDir::new(dest_root, name).map_err(|e| e.to_string())?;
    for f in stamp.files.keys().map(String::as_str).chain([STAMP_FILE]) {
        fs::copy(src.join(f), staging.path().join(f))
            .map_err(|e| format!("copying {}: {e}", src.join(f).display()))?;
    }
    // The source may change under us (another process, a failing disk): check what we copied.
    verify_dir(staging.path(), name, hash)?;
    staging.install(dest).map_err(|e| e.to_string())
}

fn prune_kernel(out: &Path, name: &str, current: &str, keep: usize) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(out.join(name)) else {
        return Vec::new();
    };
    let mut old: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    let mut removed = Vec::new();
    for e in rd.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if fname == current {
            continue;
        }
        if path.is_dir() {
            let t = fs::metadata(path.join(STAMP_FILE))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            old.push((t, path));
        } else if fname.starts_with("failed-")
            && fname.ends_with(".log")
            && fs::remove_file(&path).is_ok()
        {
            removed.push(path);
        }
    }
    old.sort_by_key(|o| std::cmp::Reverse(o.0));
    for (_, p) in old.into_iter().skip(keep) {
        if fs::remove_dir_all(&p).is_ok() {
            removed.push(p);
        }
    }
    removed
}

/// Remove `<out>/<name>/` of kernels that are no longer in the spec set. Only directories that look
/// like kernel-build's own (some `<hash>/stamp.json` inside) are touched.
fn prune_removed_kernels(out: &Path, current: &std::collections::HashSet<&str>) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(out) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if name.starts_with('.') || current.contains(name.as_str()) || !path.is_dir() {
            continue;
        }
        let ours = fs::read_dir(&path)
            .map(|rd| rd.flatten().any(|h| h.path().join(STAMP_FILE).is_file()))
            .unwrap_or(false);
        if ours && fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// Run a build. See the crate documentation for what it guarantees.
pub fn build(opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    let start = Instant::now();
    let wanted = opts.wanted();
    let (toolchain, toolchain_id) = toolchain_for(opts)?;
    let toolchain = if opts.emit_only { None } else { toolchain };
    let pool = thread_pool(opts.jobs)?;
    let generator = generator_identity();
    let out = &opts.out_dir;
    let renderer = renderer_identity(&generator);
    let index = RenderIndex::load(out, renderer.as_deref());
    let planner = Planner::new(
        &opts.templates_dir,
        &toolchain_id,
        &generator,
        renderer.as_deref(),
    );
    let mut planned = pool.install(|| plan(&opts.specs_dir, &planner, &index))?;
    let mut notes = Vec::new();

    let _lock = DirLock::acquire(out, |p| {
        eprintln!(
            "waiting for {} (another build-kernels is running on this tree)",
            p.display()
        )
    })?;
    remove_stale_temps(out);

    // Classify every selected kernel: up to date, restorable from the cache, or to build.
    let selected: Vec<usize> = (0..planned.len())
        .filter(|&i| opts.selected(planned[i].name()))
        .collect();
    let mut actions: Vec<Option<Action>> = vec![None; planned.len()];
    let classify = |p: &Planned, notes: &mut Vec<String>| -> Option<Action> {
        let dir = kernel_dir(out, p.name(), &p.hash);
        match verify_dir(&dir, p.name(), &p.hash) {
            Ok(stamp) if stamp.status.satisfies(wanted) => Some(Action::UpToDate),
            Ok(_) => None,
            Err(why) if dir.exists() => {
                notes.push(format!("rebuilding {}: {why}", p.name()));
                None
            }
            Err(_) => None,
        }
    };
    let checks: Vec<(usize, Option<Action>, Vec<String>)> = pool.install(|| {
        selected
            .par_iter()
            .map(|&i| {
                let mut n = Vec::new();
                let a = classify(&planned[i], &mut n);
                (i, a, n)
            })
            .collect()
    });
    for (i, a, n) in checks {
        actions[i] = a;
        notes.extend(n);
    }

    // What is not up to date will be written: render what was hashed from the index.
    let todo: Vec<usize> = selected
        .iter()
        .copied()
        .filter(|&i| actions[i].is_none() && planned[i].rendered.is_none())
        .collect();
    if !todo.is_empty() {
        let mut taken: Vec<(usize, Planned)> = Vec::new();
        for &i in todo.iter().rev() {
            taken.push((i, planned.remove(i)));
        }
        taken.reverse();
        let rendered: Vec<(usize, String, Result<Planned, Vec<String>>)> = pool.install(|| {
            taken
                .into_par_iter()
                .map(|(i, p)| (i, p.hash.clone(), planner.materialize(p)))
                .collect()
        });
        let mut errors = Vec::new();
        for (i, indexed_hash, r) in rendered {
            match r {
                Ok(p) => {
                    // The fresh render names the directory; if the index was stale, classify again.
                    if p.hash != indexed_hash {
                        actions[i] = classify(&p, &mut notes);
                    }
                    planned.insert(i, p);
                }
                Err(e) => errors.extend(e),
            }
        }
        if !errors.is_empty() {
            return Err(BuildError::Spec(errors));
        }
    }

    let _cache_lock = match &opts.cache_dir {
        Some(c) => Some(DirLock::acquire(c, |p| {
            eprintln!("waiting for the artifact cache lock {}", p.display())
        })?),
        None => None,
    };
    if let Some(cache) = &opts.cache_dir {
        remove_stale_temps(cache);
        for &i in &selected {
            if actions[i].is_some() {
                continue;
            }
            let p = &planned[i];
            let src = kernel_dir(cache, p.name(), &p.hash);
            if !src.exists() {
                continue;
            }
            match verify_dir(&src, p.name(), &p.hash) {
                Ok(stamp) if !stamp.status.satisfies(wanted) => {}
                Ok(_) => match copy_verified(
                    &src,
                    out,
                    &kernel_dir(out, p.name(), &p.hash),
                    p.name(),
                    &p.hash,
                ) {
                    Ok(()) => actions[i] = Some(Action::Restored),
                    Err(why) => notes.push(format!(
                        "cache entry {} not used, rebuilding: {why}",
                        src.display()
                    )),
                },
                Err(why) => notes.push(format!(
                    "cache entry {} is invalid, rebuilding: {why}",
                    src.display()
                )),
            }
        }
    }

    // Build the rest, in parallel.
    let todo: Vec<usize> = selected
        .iter()
        .copied()
        .filter(|&i| actions[i].is_none())
        .collect();
    let bar = if opts.progress && !todo.is_empty() {
        let b =
            ProgressBar::with_draw_target(Some(todo.len() as u64), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .expect("valid progress template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let failures = Mutex::new(Vec::new());
    let built: Vec<(usize, Action)> = pool.install(|| {
        todo.par_iter()
            .map(|&i| {
                let p = &planned[i];
                bar.set_message(p.name().to_string());
                let action =
                    match build_one(p, out, toolchain.as_ref(), &toolchain_id, opts.emulate) {
                        Ok(status) => Action::Built(status),
                        Err(f) => {
                            bar.println(format!("FAILED {}: {}", f.name, f.summary));
                            failures.lock().expect("failures").push(f);
                            Action::Failed
                        }
                    };
                bar.inc(1);
                (i, action)
            })
            .collect()
    });
    bar.finish_and_clear();
    for (i, a) in built {
        actions[i] = Some(a);
    }

    // Save what the cache lacks (or holds in a lesser or broken state).
    if let Some(cache) = &opts.cache_dir {
        for &i in &selected {
            if matches!(actions[i], Some(Action::Failed) | Some(Action::Restored)) {
                continue;
            }
            let p = &planned[i];
            let dest = kernel_dir(cache, p.name(), &p.hash);
            let have = verify_dir(&kernel_dir(out, p.name(), &p.hash), p.name(), &p.hash);
            let Ok(have) = have else { continue };
            let cached_ok = verify_dir(&dest, p.name(), &p.hash)
                .map(|s| s.status.satisfies(have.status))
                .unwrap_or(false);
            if !cached_ok {
                if let Err(why) = copy_verified(
                    &kernel_dir(out, p.name(), &p.hash),
                    cache,
                    &dest,
                    p.name(),
                    &p.hash,
                ) {
                    notes.push(format!("cannot save {} to the cache: {why}", p.name()));
                }
            }
        }
    }
    drop(_cache_lock);

    if let Prune::KeepNewest(keep) = opts.prune {
        for &i in &selected {
            let p = &planned[i];
            for r in prune_kernel(out, p.name(), &p.hash, keep) {
                notes.push(format!("pruned {}", r.display()));
            }
        }
        if opts.filter.is_none() {
            let current: std::collections::HashSet<&str> =
                planned.iter().map(|p| p.name()).collect();
            for r in prune_removed_kernels(out, &current) {
                notes.push(format!("pruned {} (no longer in the specs)", r.display()));
            }
        }
    }

    // The manifest lists every kernel of the spec set whose current directory is complete.
    let entries: Vec<Option<ManifestEntry>> = pool.install(|| {
        planned
            .par_iter()
            .enumerate()
            .map(|(i, p)| {
                // Kernels classified or built in this run are known; verify the others.
                let dir = kernel_dir(out, p.name(), &p.hash);
                match actions[i] {
                    Some(Action::Failed) => None,
                    _ => verify_dir(&dir, p.name(), &p.hash)
                        .ok()
                        .map(|stamp| manifest::entry(p, out, &stamp)),
                }
            })
            .collect()
    });
    let manifest_path = out.join(manifest::MANIFEST_FILE);
    let text = manifest::to_json(entries.into_iter().flatten().collect())?;
    write_atomic(&manifest_path, text.as_bytes())?;
    if let Some(r) = renderer.as_deref() {
        let index = RenderIndex::from_planned(r, &planned);
        let text = serde_json::to_string(&index).expect("index serialises");
        let path = out.join(INDEX_FILE);
        if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            write_atomic(&path, text.as_bytes())?;
        }
    }

    let kernels = selected
        .iter()
        .map(|&i| KernelOutcome {
            name: planned[i].name().to_string(),
            hash: planned[i].hash.clone(),
            action: actions[i].expect("every kernel has an outcome"),
        })
        .collect();
    let failures = failures.into_inner().expect("failures");
    if !failures.is_empty() {
        return Err(BuildError::KernelsFailed(failures));
    }
    Ok(BuildReport {
        kernels,
        mode: wanted,
        elapsed: start.elapsed(),
        manifest_path,
        rendered: planned.iter().filter(|p| p.rendered.is_some()).count(),
        notes,
    })
}
