//! File-system helpers: hashing files, atomic file writes, temp dirs that become a final dir by one
//! rename.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::BuildError;

/// Prefix of every temporary entry inside an output or cache directory. Entries with it are never a
/// result; a build holding the directory's lock may delete them (they are left-overs of a crash).
pub const TMP_PREFIX: &str = ".tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Attach the path to an I/O error.
pub fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> BuildError {
    let path = path.into();
    move |source| BuildError::Io { path, source }
}

/// A name unique to this process and call: `.tmp-<label>-<pid>-<n>`.
pub fn unique_tmp_name(label: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{TMP_PREFIX}{label}-{}-{n}", std::process::id())
}

/// Hex sha256 of a file's bytes.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Write `bytes` to `path` through a temporary file in the same directory and one rename, so that a
/// reader sees either the old file or the complete new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(unique_tmp_name("file"));
    let res = (|| {
        fs::write(&tmp, bytes)?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(BuildError::Io {
            path: path.to_path_buf(),
            source: e,
        });
    }
    Ok(())
}

/// A directory under `<root>/.tmp-*` that is deleted on drop unless [`StagingDir::install`]
/// moved it to its final place.
pub struct StagingDir {
    root: PathBuf,
    path: Option<PathBuf>,
}

impl StagingDir {
    pub fn new(root: &Path, label: &str) -> Result<StagingDir, BuildError> {
        fs::create_dir_all(root).map_err(io_err(root))?;
        let path = root.join(unique_tmp_name(label));
        fs::create_dir(&path).map_err(io_err(&path))?;
        Ok(StagingDir {
            root: root.to_path_buf(),
            path: Some(path),
        })
    }

    pub fn path(&self) -> &Path {
        self.path
            .as_deref()
            .expect("staging dir used after install")
    }

    /// Move the staged directory to `dest` (replacing what is there). The only moment `dest`
    /// changes is a rename: a crash leaves either the old complete directory, no directory, or the
    /// new complete one.
    pub fn install(mut self, dest: &Path) -> Result<(), BuildError> {
        let src = self.path.take().expect("staging dir installed twice");
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        if dest.exists() {
            // Move the old directory aside first: rename cannot replace a non-empty directory.
            let aside = self.root.join(unique_tmp_name("old"));
            fs::rename(dest, &aside).map_err(io_err(dest))?;
            let res = fs::rename(&src, dest).map_err(io_err(dest));
            let _ = fs::remove_dir_all(&aside);
            if res.is_err() {
                let _ = fs::remove_dir_all(&src);
            }
            return res;
        }
        let res = fs::rename(&src, dest).map_err(io_err(dest));
        if res.is_err() {
            let _ = fs::remove_dir_all(&src);
        }
        res
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// Delete every `.tmp-*` entry of `dir` (left-overs of an interrupted build). Call only while
/// holding the directory's lock.
pub fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            let p = e.path();
            if p.is_dir() {
                let _ = fs::remove_dir_all(&p);
            } else {
                let _ = fs::remove_file(&p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_dir_replaces_destination_and_cleans_up() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("k/abc");
        fs::create_dir_all(&dest).unwrap();
        fs::write(dest.join("old.txt"), "old").unwrap();
        let s = StagingDir::new(t.path(), "k").unwrap();
        fs::write(s.path().join("new.txt"), "new").unwrap();
        s.install(&dest).unwrap();
        assert!(dest.join("new.txt").exists());
        assert!(!dest.join("old.txt").exists());
        let leftovers: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(TMP_PREFIX))
            .collect();
        assert!(leftovers.is_empty());
        // A dropped staging dir disappears.
        let s = StagingDir::new(t.path(), "gone").unwrap();
        let p = s.path().to_path_buf();
        drop(s);
        assert!(!p.exists());
    }

    #[test]
    fn write_atomic_writes_whole_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("m.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
