//! Where inputs are read and outputs written: local paths and S3-compatible object storage
//! (the `object_store` crate), behind one synchronous API.
//!
//! Writes never leave a half-written file under its final name: a local file is written to a
//! temporary `.<name>.<random>.tmp` in the same directory, synced and renamed into place; an S3
//! object appears whole or not at all (one PUT).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::Error;

/// A file or directory on the local disk, or an object or prefix in an S3 bucket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, key: String },
}

impl Location {
    /// Reads `s3://bucket/key`, `file:///path` or a path (relative paths against `base`, when
    /// given: a manifest's directory).
    pub fn parse(s: &str, base: Option<&Location>) -> Result<Location, String> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("{s:?} names no bucket (expected s3://bucket/key)"));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                key: key.trim_matches('/').to_string(),
            });
        }
        if let Some(path) = s.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "{s:?}: a file:// URL needs an absolute path (file:///...)"
                ));
            }
            return Ok(Location::Local(PathBuf::from(path)));
        }
        if s.contains("://") {
            return Err(format!(
                "{s:?}: unsupported URL scheme (use s3://, file:// or a path)"
            ));
        }
        if s.is_empty() {
            return Err("empty path".into());
        }
        Ok(match base {
            Some(base) if Path::new(s).is_relative() => base.join(s),
            _ => Location::Local(PathBuf::from(s)),
        })
    }

    /// `name` (a relative path with `/`) inside this directory or prefix.
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(name)),
            Location::S3 { bucket, key } => Location::S3 {
                bucket: bucket.clone(),
                key: if key.is_empty() {
                    name.to_string()
                } else {
                    format!("{key}/{name}")
                },
            },
        }
    }

    /// The directory or prefix holding this file or object.
    pub fn parent(&self) -> Location {
        match self {
            Location::Local(p) => Location::Local(
                p.parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_path_buf(),
            ),
            Location::S3 { bucket, key } => Location::S3 {
                bucket: bucket.clone(),
                key: key.rsplit_once('/').map_or("", |(d, _)| d).to_string(),
            },
        }
    }

    /// The last component (a file name).
    pub fn name(&self) -> String {
        match self {
            Location::Local(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Location::S3 { key, .. } => key.rsplit('/').next().unwrap_or("").to_string(),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// How to reach S3: the `AWS_*` settings object_store knows (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_SESSION_TOKEN`, ...), passed in by
/// the caller, plus an endpoint override for a local server.
#[derive(Clone, Debug, Default)]
pub struct S3Settings {
    /// `(name, value)` pairs such as `("AWS_REGION", "eu-west-1")`; unknown names are ignored.
    pub config: Vec<(String, String)>,
    /// `http(s)://host:port` of an S3-compatible server (MinIO, Ceph, a test server).
    pub endpoint: Option<String>,
    /// Allow a plain-HTTP endpoint.
    pub allow_http: bool,
}

/// Reads and writes [`Location`]s. Holds the S3 clients (one per bucket) and the small async
/// runtime they run on.
pub struct Storage {
    s3: S3Settings,
    rt: tokio::runtime::Runtime,
    buckets: Mutex<HashMap<String, Arc<AmazonS3>>>,
}

impl Storage {
    pub fn new(s3: S3Settings) -> Result<Storage, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                Error::storage("the S3 client", format!("cannot start its runtime: {e}"))
            })?;
        Ok(Storage {
            s3,
            rt,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    fn bucket(&self, bucket: &str) -> Result<Arc<AmazonS3>, Error> {
        let mut buckets = self.buckets.lock().expect("no panics while locked");
        if let Some(b) = buckets.get(bucket) {
            return Ok(b.clone());
        }
        let mut builder = AmazonS3Builder::new();
        for (name, value) in &self.s3.config {
            if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, value);
            }
        }
        if let Some(endpoint) = &self.s3.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if self.s3.allow_http {
            builder = builder.with_allow_http(true);
        }
        let client = builder.with_bucket_name(bucket).build().map_err(|e| {
            Error::storage(
                format!("s3://{bucket}"),
                format!("cannot set up the S3 client: {e} (set AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or --s3-endpoint)"),
            )
        })?;
        let client = Arc::new(client);
        buckets.insert(bucket.to_string(), client.clone());
        Ok(client)
    }

    /// The bytes of a file or object; `Ok(None)` when it does not exist.
    pub fn get(&self, loc: &Location) -> Result<Option<Vec<u8>>, Error> {
        match loc {
            Location::Local(p) => match std::fs::read(p) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::storage(loc, e)),
            },
            Location::S3 { bucket, key } => {
                let client = self.bucket(bucket)?;
                let path = ObjectPath::from(key.as_str());
                self.rt
                    .block_on(async {
                        match client.get(&path).await {
                            Ok(r) => r.bytes().await.map(|b| Some(b.to_vec())),
                            Err(object_store::Error::NotFound { .. }) => Ok(None),
                            Err(e) => Err(e),
                        }
                    })
                    .map_err(|e| Error::storage(loc, e))
            }
        }
    }

    /// Writes `bytes` to `loc` atomically (creating local directories as needed).
    pub fn put(&self, loc: &Location, bytes: &[u8]) -> Result<(), Error> {
        match loc {
            Location::Local(p) => write_atomic(p, bytes).map_err(|e| Error::storage(loc, e)),
            Location::S3 { bucket, key } => {
                let client = self.bucket(bucket)?;
                let path = ObjectPath::from(key.as_str());
                let payload = PutPayload::from(bytes.to_vec());
                self.rt
                    .block_on(client.put(&path, payload))
                    .map(|_| ())
                    .map_err(|e| Error::storage(loc, e))
            }
        }
    }

    /// Every file under a directory or prefix, recursively, as paths relative to it with `/`,
    /// sorted. Hidden local files (`.name`, such as our temporaries) are left out.
    pub fn list(&self, dir: &Location) -> Result<Vec<String>, Error> {
        let mut names = match dir {
            Location::Local(p) => {
                let mut out = Vec::new();
                walk(p, "", &mut out).map_err(|e| Error::storage(dir, e))?;
                out
            }
            Location::S3 { bucket, key } => {
                let client = self.bucket(bucket)?;
                let prefix = (!key.is_empty()).then(|| ObjectPath::from(key.as_str()));
                let metas: Vec<_> = self
                    .rt
                    .block_on(client.list(prefix.as_ref()).try_collect())
                    .map_err(|e: object_store::Error| Error::storage(dir, e))?;
                let strip = if key.is_empty() {
                    String::new()
                } else {
                    format!("{key}/")
                };
                metas
                    .into_iter()
                    .filter_map(|m| m.location.as_ref().strip_prefix(&strip).map(str::to_string))
                    .collect()
            }
        };
        names.sort();
        Ok(names)
    }

    /// Makes sure outputs can be written under `dir`: creates a local directory, or lists the
    /// first page of an S3 prefix (a missing bucket or bad credentials fail here).
    pub fn prepare_output(&self, dir: &Location) -> Result<(), Error> {
        match dir {
            Location::Local(p) => std::fs::create_dir_all(p).map_err(|e| Error::storage(dir, e)),
            Location::S3 { bucket, key } => {
                let client = self.bucket(bucket)?;
                let prefix = (!key.is_empty()).then(|| ObjectPath::from(key.as_str()));
                self.rt
                    .block_on(async { client.list(prefix.as_ref()).try_next().await })
                    .map(|_| ())
                    .map_err(|e| Error::storage(dir, e))
            }
        }
    }

    /// Removes temporaries a killed run left behind for output `stem` in a local directory
    /// (`.<stem>.*.tmp`). S3 has none: a PUT is whole or absent.
    pub fn remove_stale_temporaries(&self, dir: &Location, stem: &str) -> Result<usize, Error> {
        let Location::Local(d) = dir else {
            return Ok(0);
        };
        let entries = match std::fs::read_dir(d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::storage(dir, e)),
        };
        let prefix = format!(".{stem}.");
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with(".tmp") {
                std::fs::remove_file(entry.path())
                    .map_err(|e| Error::storage(entry.path().display(), e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The files below `dir` (hidden ones skipped; symbolic links not followed), as paths relative
/// to it joined by `/`, appended to `out` under `rel`.
pub(crate) fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// Temporary file in the target's directory, synced, renamed over the target.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // `<stem>` is the name up to its first dot: the key, for remove_stale_temporaries.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_join() {
        let base = Location::parse("s3://b/archive/list.jsonl", None)
            .unwrap()
            .parent();
        assert_eq!(base.join("a/x.wav").to_string(), "s3://b/archive/a/x.wav");
        let local = Location::parse("/data/list.jsonl", None).unwrap().parent();
        assert_eq!(
            Location::parse("x.wav", Some(&local)).unwrap(),
            Location::Local("/data/x.wav".into())
        );
        assert_eq!(
            Location::parse("file:///y.wav", Some(&local)).unwrap(),
            Location::Local("/y.wav".into())
        );
        assert!(Location::parse("http://h/x.wav", None).is_err());
        assert!(Location::parse("s3:///x", None).is_err());
    }

    #[test]
    fn local_writes_are_atomic_and_stale_temporaries_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let s = Storage::new(S3Settings::default()).unwrap();
        let out = Location::Local(d.path().join("out"));
        s.put(&out.join("k1.txt"), b"hello").unwrap();
        assert_eq!(s.get(&out.join("k1.txt")).unwrap().unwrap(), b"hello");
        assert_eq!(s.get(&out.join("nope")).unwrap(), None);
        std::fs::write(d.path().join("out/.k1.txt.abc.tmp"), "half").unwrap();
        std::fs::write(d.path().join("out/.k2.txt.abc.tmp"), "other").unwrap();
        assert_eq!(s.list(&out).unwrap(), ["k1.txt"]);
        assert_eq!(s.remove_stale_temporaries(&out, "k1").unwrap(), 1);
        assert!(d.path().join("out/.k2.txt.abc.tmp").exists());
    }
}
