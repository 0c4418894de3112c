//! `stamp.json`: the record that makes a `<name>/<hash>/` directory a finished, checkable artifact.
//! It is written last, inside the staging directory, before the directory is renamed into place.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fsutil::sha256_file;

pub const STAMP_FILE: &str = "stamp.json";
const STAMP_VERSION: u32 = 1;

/// How far a kernel was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactStatus {
    /// Rendered and checked: design.mlir and the kernel sources.
    Emitted,
    /// Also compiled: `<name>.xclbin` and `insts.bin`.
    Compiled,
}

impl ArtifactStatus {
    /// Whether an artifact with this status serves a request for `wanted`: a compiled artifact also
    /// serves an emit-only request, an emitted one never serves a compile request.
    pub fn satisfies(self, wanted: ArtifactStatus) -> bool {
        self == ArtifactStatus::Compiled || wanted == ArtifactStatus::Emitted
    }
}

impl fmt::Display for ArtifactStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArtifactStatus::Emitted => "emitted",
            ArtifactStatus::Compiled => "compiled",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stamp {
    pub version: u32,
    pub name: String,
    pub hash: String,
    pub status: ArtifactStatus,
    pub generator: String,
    pub toolchain: String,
    /// File name (flat, inside the directory) -> hex sha256 of its bytes.
    pub files: BTreeMap<String, String>,
}

impl Stamp {
    /// Build the stamp of a finished directory: hashes every regular file in it except the stamp.
    pub fn for_dir(
        dir: &Path,
        name: &str,
        hash: &str,
        status: ArtifactStatus,
        generator: &str,
        toolchain: &str,
    ) -> std::io::Result<Stamp> {
        let mut files = BTreeMap::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let fname = e.file_name().to_string_lossy().into_owned();
            if fname == STAMP_FILE || !e.file_type()?.is_file() {
                continue;
            }
            files.insert(fname, sha256_file(&e.path())?);
        }
        Ok(Stamp {
            version: STAMP_VERSION,
            name: name.to_string(),
            hash: hash.to_string(),
            status,
            generator: generator.to_string(),
            toolchain: toolchain.to_string(),
            files,
        })
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).expect("stamp serialises");
        fs::write(dir.join(STAMP_FILE), text)
    }
}

/// Check that `dir` holds a complete artifact of kernel `name` with hash `hash`: its stamp parses,
/// names this kernel and hash, and every recorded file exists with the recorded sha256. Returns the
/// stamp, or why the directory cannot be used.
pub fn verify_dir(dir: &Path, name: &str, hash: &str) -> Result<Stamp, String> {
    let stamp_path = dir.join(STAMP_FILE);
    let text = match fs::read_to_string(&stamp_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{} is missing", stamp_path.display()))
        }
        Err(e) => return Err(format!("cannot read {}: {e}", stamp_path.display())),
    };
    let stamp: Stamp = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a valid stamp: {e}", stamp_path.display()))?;
    if stamp.version != STAMP_VERSION {
        return Err(format!(
            "{} has stamp version {}, expected {STAMP_VERSION}",
            stamp_path.display(),
            stamp.version
        ));
    }
    if stamp.name != name || stamp.hash != hash {
        return Err(format!(
            "{} records kernel {} hash {}, expected {name} hash {hash}",
            stamp_path.display(),
            stamp.name,
            stamp.hash
        ));
    }
    if stamp.files.is_empty() {
        return Err(format!("{} records no files", stamp_path.display()));
    }
    for (fname, want) in &stamp.files {
        // Stamps may come from a cache directory: never follow a name out of the directory.
        if fname.contains(['/', '\\']) || fname == ".." || fname == "." || fname.is_empty() {
            return Err(format!(
                "{} lists an invalid file name {fname:?}",
                stamp_path.display()
            ));
        }
        let p = dir.join(fname);
        match sha256_file(&p) {
            Ok(got) if &got == want => {}
            Ok(got) => {
                return Err(format!(
                    "{} is corrupted: sha256 {got}, stamp records {want}",
                    p.display()
                ))
            }
            Err(e) => return Err(format!("{}: {e}", p.display())),
        }
    }
    Ok(stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_detects_truncation_and_wrong_hash() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::write(d.join("design.mlir"), "module {}").unwrap();
        fs::write(d.join("mm.cc"), "int x;").unwrap();
        let s = Stamp::for_dir(d, "k", "h1", ArtifactStatus::Emitted, "g", "emit-only").unwrap();
        s.write(d).unwrap();
        assert_eq!(verify_dir(d, "k", "h1").unwrap(), s);
        assert!(verify_dir(d, "k", "h2")
            .unwrap_err()
            .contains("expected k hash h2"));
        fs::write(d.join("mm.cc"), "int").unwrap();
        assert!(verify_dir(d, "k", "h1").unwrap_err().contains("corrupted"));
        fs::remove_file(d.join("mm.cc")).unwrap();
        assert!(verify_dir(d, "k", "h1").is_err());
        fs::write(d.join(STAMP_FILE), "{").unwrap();
        assert!(verify_dir(d, "k", "h1")
            .unwrap_err()
            .contains("not a valid stamp"));
    }

    #[test]
    fn status_satisfaction() {
        use ArtifactStatus::*;
        assert!(Compiled.satisfies(Emitted));
        assert!(Compiled.satisfies(Compiled));
        assert!(Emitted.satisfies(Emitted));
        assert!(!Emitted.satisfies(Compiled));
    }
}
