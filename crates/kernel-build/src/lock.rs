//! Advisory lock on `<dir>/.lock`, held for a whole build so that two `build-kernels` runs on one
//! tree take turns instead of interleaving their writes.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::fsutil::io_err;
use crate::BuildError;

pub const LOCK_FILE: &str = ".lock";

/// Held lock; released when dropped (and by the OS if the process dies).
pub struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Lock `<dir>/.lock`, waiting for another holder. `on_wait` is called once if we must wait.
    pub fn acquire(dir: &Path, on_wait: impl FnOnce(&Path)) -> Result<DirLock, BuildError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        // Called through the trait: the std inherent methods are newer than the workspace MSRV.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                on_wait(&path);
                fs4::FileExt::lock(&file).map_err(io_err(&path))?;
            }
            Err(fs4::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        Ok(DirLock { file, path })
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if let Err(e) = fs4::FileExt::unlock(&self.file) {
            eprintln!("warning: cannot unlock {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn second_locker_waits_for_the_first() {
        let t = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(t.path(), |_| panic!("nobody holds it yet")).unwrap();
        let released = Arc::new(AtomicBool::new(false));
        let r2 = released.clone();
        let dir = t.path().to_path_buf();
        let waited = Arc::new(AtomicBool::new(false));
        let w2 = waited.clone();
        let h = std::thread::spawn(move || {
            let _l = DirLock::acquire(&dir, |_| w2.store(true, Ordering::SeqCst)).unwrap();
            assert!(
                r2.load(Ordering::SeqCst),
                "got the lock before it was released"
            );
        });
        std::thread::sleep(Duration::from_millis(200));
        released.store(true, Ordering::SeqCst);
        drop(first);
        h.join().unwrap();
        assert!(waited.load(Ordering::SeqCst));
    }
}
