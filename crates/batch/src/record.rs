//! What a finished input leaves behind: its [`Record`] (`OUT/<key>.json`, written after its
//! outputs) and its [`IndexEntry`] (`OUT/inputs/<sha256 of id>.json`, written last).

use serde::{Deserialize, Serialize};

use crate::key::{sha256_hex, ModelIdentity};
use crate::store::{Location, Storage};

/// Version of the record format.
pub const RECORD_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Failed,
}

/// One transcript file of a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    pub format: String,
    /// File name inside the output location.
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

/// Wall-clock seconds of one input (they differ from run to run; everything else in a record
/// is the same on every machine).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub read_seconds: f64,
    pub decode_seconds: f64,
    pub transcribe_seconds: f64,
    /// transcribe_seconds / audio seconds (below 1: faster than real time).
    pub real_time_factor: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub key: String,
    /// The input that produced it (another input with the same audio and options shares it).
    pub input_id: String,
    pub source: String,
    pub audio_sha256: String,
    pub audio_bytes: u64,
    pub model: ModelIdentity,
    /// The effective transcription options (run options with the input's overrides).
    pub options: serde_json::Value,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub audio_seconds: Option<f64>,
    pub language: Option<String>,
    pub outputs: Vec<OutputFile>,
    pub timings: Timings,
}

impl Record {
    pub fn name(key: &str) -> String {
        format!("{key}.json")
    }

    /// Whether this is a finished transcription whose output files exist with the recorded
    /// hashes, in at least the formats `wanted`. Reads every output.
    pub fn is_complete(&self, storage: &Storage, out: &Location, wanted: &[String]) -> bool {
        if self.status != Status::Done || self.version != RECORD_VERSION {
            return false;
        }
        if !wanted
            .iter()
            .all(|f| self.outputs.iter().any(|o| &o.format == f))
        {
            return false;
        }
        self.outputs.iter().all(|o| {
            matches!(storage.get(&out.join(&o.name)), Ok(Some(b)) if sha256_hex(&b) == o.sha256)
        })
    }
}

/// Where an input went: its key (`None` when it could not be read) and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub input_id: String,
    pub source: String,
    pub key: Option<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl IndexEntry {
    pub fn name(input_id: &str) -> String {
        format!("inputs/{}.json", sha256_hex(input_id.as_bytes()))
    }
}

/// Pretty JSON with a final newline.
pub fn to_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).expect("records serialise");
    b.push(b'\n');
    b
}
