//! Writing an output file so that a failure (a full disk, a quota, a kill) never leaves a
//! half-written file in place of a good one: the text goes to a temporary file in the same
//! directory, is flushed to disk, and is renamed over the target only when complete.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

pub fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "writing {}: cannot create a temporary file in {}",
                path.display(),
                dir.display()
            )
        })?;
    // On error the temporary file is removed when `tmp` drops; the target is untouched.
    (|| -> std::io::Result<()> {
        tmp.write_all(text.as_bytes())?;
        tmp.as_file().sync_all()
    })()
    .with_context(|| {
        format!(
            "writing {} failed (disk full or over quota?); the previous file, if any, is unchanged",
            path.display()
        )
    })?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| {
        format!(
            "writing {}: cannot rename the finished file into place",
            path.display()
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.txt");
        std::fs::write(&p, "old").unwrap();
        write_atomic(&p, "new text").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new text");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        let e = write_atomic(&d.path().join("missing/a.txt"), "x").unwrap_err();
        assert!(format!("{e:#}").contains("missing/a.txt"), "{e:#}");
    }
}
