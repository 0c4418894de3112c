//! Detecting a model directory that changes while it is loaded (a fetch or copy still writing
//! it, a user replacing a file): the length and modification time of every file the loader
//! reads are taken before loading and compared after; any difference is an error asking the
//! user to retry, instead of weights mixed from two versions.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::WeightsError;

/// The files of a checkpoint directory that loading reads.
const FILES: [&str; 6] = [
    "model.bin",
    "model.safetensors",
    "config.json",
    "generation_config.json",
    "vocabulary.txt",
    "tokenizer.json",
];

type Stat = Option<(u64, Option<SystemTime>)>;

fn stat(path: &Path) -> Stat {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()))
}

fn describe(s: &Stat) -> String {
    match s {
        None => "absent".into(),
        Some((len, mtime)) => {
            let t = mtime
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
                .unwrap_or_else(|| "?".into());
            format!("{len} bytes, modified {t}")
        }
    }
}

pub(crate) struct Snapshot {
    files: Vec<(PathBuf, Stat)>,
}

impl Snapshot {
    pub(crate) fn take(dir: &Path) -> Snapshot {
        Snapshot {
            files: FILES
                .iter()
                .map(|f| {
                    let p = dir.join(f);
                    let s = stat(&p);
                    (p, s)
                })
                .collect(),
        }
    }

    /// An error naming the first file whose length, modification time or presence changed.
    pub(crate) fn verify(&self) -> Result<(), WeightsError> {
        for (path, before) in &self.files {
            let now = stat(path);
            if &now != before {
                return Err(WeightsError::Changed {
                    path: path.clone(),
                    detail: format!("{} before, {} after", describe(before), describe(&now)),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::weights::{Checkpoint, WeightsError};

    /// A directory the loader reads and rejects (a safetensors file without tensors): enough to
    /// see a change made while it loads.
    fn tiny_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.json"), "{}").unwrap();
        std::fs::write(d.path().join("model.safetensors"), b"\x02\0\0\0\0\0\0\0{}").unwrap();
        d
    }

    #[test]
    fn a_file_rewritten_or_added_is_detected() {
        let d = tiny_dir();
        let snap = super::Snapshot::take(d.path());
        assert!(snap.verify().is_ok());
        std::fs::write(d.path().join("config.json"), "{\"d_model\": 4}").unwrap();
        let e = snap.verify().unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, WeightsError::Changed { .. }), "{msg}");
        assert!(
            msg.contains("config.json")
                && msg.contains("2 bytes")
                && msg.contains("load the model again"),
            "{msg}"
        );
        // A file that appears (a copy still arriving) counts too.
        let snap = super::Snapshot::take(d.path());
        std::fs::write(d.path().join("tokenizer.json"), "{}").unwrap();
        assert!(snap
            .verify()
            .unwrap_err()
            .to_string()
            .contains("absent before"));
    }

    #[test]
    fn a_change_during_loading_is_reported_with_the_fix() {
        let d = tiny_dir();
        let path = d.path().join("model.safetensors");
        let e = Checkpoint::load_observed(d.path(), || {}).unwrap_err();
        assert!(!matches!(e, WeightsError::Changed { .. }), "{e}");
        let e = Checkpoint::load_observed(d.path(), || {
            // Same length, other bytes: only the modification time tells.
            std::thread::sleep(std::time::Duration::from_millis(20));
            std::fs::write(&path, b"\x02\0\0\0\0\0\0\0[]").unwrap();
        })
        .unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, WeightsError::Changed { .. }), "{msg}");
        assert!(
            msg.contains("model.safetensors") && msg.contains("changed while"),
            "{msg}"
        );
    }
}
