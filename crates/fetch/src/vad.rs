//! Silero VAD v6 (MIT) from the `silero-vad` wheel: the 16 kHz ONNX model whose weights
//! `whisper-vad` reads, and the wheel's main ONNX model, which the VAD's reference test runs
//! with onnxruntime. Both are checked by sha256 and installed together into
//! `<cache>/vad/silero-vad-<version>/`.
//!
//! Why the ONNX file and not the wheel's `silero_vad_16k.safetensors`: in 6.2.x that file's
//! weights differ from those of the wheel's `silero_vad.onnx`, `silero_vad_16k_op15.onnx` and
//! `silero_vad.jit` (which agree with each other), so it is not the model pip users run.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{
    check_sha, extract_zip_member, install, io_err, pip_download, temp_dir_in, write_marker,
    FetchError, HashingWriter, Wheel, MARKER,
};

/// The pinned wheel.
pub const SILERO_VAD_WHEEL: Wheel = Wheel {
    package: "silero-vad",
    version: "6.2.3",
    file: "silero_vad-6.2.3-py3-none-any.whl",
    sha256: "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
};

/// The 16 kHz-only export, with the weights as top-level initializers.
pub const SILERO_VAD_WEIGHTS: &str = "silero_vad_16k_op15.onnx";
/// The model `silero_vad.load_silero_vad(onnx=True)` runs (8 and 16 kHz).
pub const SILERO_VAD_REFERENCE: &str = "silero_vad.onnx";

/// (file, sha256) of each file taken from `silero_vad/data/` in the wheel.
const FILES: [(&str, &str); 2] = [
    (
        SILERO_VAD_WEIGHTS,
        "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49",
    ),
    (
        SILERO_VAD_REFERENCE,
        "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
    ),
];

/// Name accepted by `cargo xtask fetch-model`.
pub const VAD_MODEL_NAME: &str = "silero-vad";

/// Where the VAD files live in `cache` (fetched or not).
pub fn vad_dir(cache: &Path) -> PathBuf {
    let w = &SILERO_VAD_WHEEL;
    cache
        .join("vad")
        .join(format!("{}-{}", w.package, w.version))
}

/// The weights file if it has been fetched.
pub fn cached_vad_weights(cache: &Path) -> Option<PathBuf> {
    let dir = vad_dir(cache);
    dir.join(MARKER)
        .is_file()
        .then(|| dir.join(SILERO_VAD_WEIGHTS))
}

/// The weights file (`SileroVad::load` takes it), fetching the wheel on first use when
/// `fetch_if_missing`.
pub fn vad_weights(cache: &Path, fetch_if_missing: bool) -> Result<PathBuf, FetchError> {
    if let Some(p) = cached_vad_weights(cache) {
        return Ok(p);
    }
    if !fetch_if_missing {
        return Err(FetchError::NotFetched {
            name: VAD_MODEL_NAME.into(),
            cache: cache.to_path_buf(),
        });
    }
    fetch_vad(cache).map(|dir| dir.join(SILERO_VAD_WEIGHTS))
}

/// The reference ONNX model (for tests), fetching the wheel on first use.
pub fn vad_reference_model(cache: &Path) -> Result<PathBuf, FetchError> {
    vad_weights(cache, true)?;
    Ok(vad_dir(cache).join(SILERO_VAD_REFERENCE))
}

/// Downloads the wheel, verifies it and the two model files, installs them; returns the directory.
pub fn fetch_vad(cache: &Path) -> Result<PathBuf, FetchError> {
    let dest = vad_dir(cache);
    if dest.join(MARKER).is_file() {
        return Ok(dest);
    }
    let w = &SILERO_VAD_WHEEL;
    let tmp = temp_dir_in(&cache.join("vad"), "silero-vad")?;
    let dl = tmp.path().join(".wheel");
    std::fs::create_dir_all(&dl).map_err(io_err(&dl))?;
    tracing::info!(
        "downloading {}=={} with pip (about 11 MB, once)",
        w.package,
        w.version
    );
    let wheel = pip_download(w, &["--only-binary", ":all:"], &dl)?;
    let out = tmp.path().join("vad");
    std::fs::create_dir_all(&out).map_err(io_err(&out))?;
    let mut record = String::new();
    for (file, sha) in FILES {
        let dest_file = out.join(file);
        let f = std::fs::File::create(&dest_file).map_err(io_err(&dest_file))?;
        let mut hasher = Sha256::new();
        let mut writer = HashingWriter {
            file: f,
            hasher: &mut hasher,
        };
        extract_zip_member(&wheel, &format!("silero_vad/data/{file}"), &mut writer)?;
        writer.file.sync_all().map_err(io_err(&dest_file))?;
        let got = hex::encode(hasher.finalize());
        check_sha(file, sha, &got)?;
        record.push_str(&format!("{file} sha256 {got}\n"));
    }
    std::fs::remove_dir_all(&dl).map_err(io_err(&dl))?;
    write_marker(&out, &format!("{} {}\n{record}", w.file, w.sha256))?;
    install(tmp, &out, &dest)?;
    tracing::info!("Silero VAD is ready in {}", dest.display());
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfetched_vad_names_the_fetch_command() {
        let dir = tempfile::tempdir().unwrap();
        let e = vad_weights(dir.path(), false).unwrap_err().to_string();
        assert!(e.contains("cargo xtask fetch-model silero-vad"), "{e}");
    }

    #[test]
    fn table_hashes_are_sha256() {
        for sha in FILES.iter().map(|f| f.1).chain([SILERO_VAD_WHEEL.sha256]) {
            assert_eq!(sha.len(), 64);
            assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
}
