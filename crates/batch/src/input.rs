//! The inputs of a batch: a JSON Lines manifest, or every audio file under a directory or S3
//! prefix.
//!
//! A manifest line is an object with `"path"` (relative paths resolve against the manifest's
//! directory or prefix) or `"url"` (`s3://bucket/key`, `file:///...`), an optional `"id"`
//! (default: the path or URL as written), per-file [`Overrides`], and an optional free-form
//! `"meta"`. Unknown fields are errors (a misspelt option must not be ignored silently).

use serde::Deserialize;
use whisper_model::{Task, TranscribeOptions};

use crate::error::Error;
use crate::store::{Location, Storage};

/// File name endings listed as audio in a directory or prefix.
pub const AUDIO_EXTENSIONS: [&str; 9] = [
    "wav", "flac", "mp3", "ogg", "oga", "m4a", "aac", "aiff", "aif",
];

/// One file to transcribe.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    /// Stable name of the input: what sharding hashes and records name.
    pub id: String,
    pub source: Location,
    pub overrides: Overrides,
}

/// Options of one manifest line that replace the run's.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    pub language: Option<String>,
    pub task: Option<String>,
    pub beam_size: Option<usize>,
    /// The initial prompt.
    pub prompt: Option<String>,
    pub word_timestamps: Option<bool>,
}

impl Overrides {
    /// `base` with these overrides; a bad value (an unknown task) is an error message.
    pub fn apply(&self, base: &TranscribeOptions) -> Result<TranscribeOptions, String> {
        let mut o = base.clone();
        if let Some(l) = &self.language {
            o.language = Some(l.clone());
        }
        if let Some(t) = &self.task {
            o.task = t.parse::<Task>()?;
        }
        if let Some(b) = self.beam_size {
            o.beam_size = b;
        }
        if let Some(p) = &self.prompt {
            o.initial_prompt = Some(p.clone());
        }
        if let Some(w) = self.word_timestamps {
            o.word_timestamps = w;
        }
        Ok(o)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: Option<String>,
    path: Option<String>,
    url: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // kept for the user, not read
    meta: serde_json::Value,
    #[serde(flatten)]
    overrides: Overrides,
}

/// Whether `loc` names a manifest rather than a directory or prefix.
pub fn is_manifest(loc: &Location) -> bool {
    match loc {
        Location::Local(p) => p.is_file(),
        Location::S3 { key, .. } => [".jsonl", ".ndjson", ".json"]
            .iter()
            .any(|e| key.ends_with(e)),
    }
}

/// The inputs named by `loc`: a manifest's lines, or the audio files listed under it (sorted,
/// ids relative to it).
pub fn load_inputs(storage: &Storage, loc: &Location) -> Result<Vec<Input>, Error> {
    if is_manifest(loc) {
        let bytes = storage
            .get(loc)?
            .ok_or_else(|| Error::storage(loc, "no such manifest"))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::storage(loc, "the manifest is not UTF-8 text"))?;
        return parse_manifest(&text, loc);
    }
    if let Location::Local(p) = loc {
        if !p.is_dir() {
            return Err(Error::storage(loc, "no such file or directory"));
        }
    }
    let inputs: Vec<Input> = storage
        .list(loc)?
        .into_iter()
        .filter(|name| is_audio(name))
        .map(|name| Input {
            source: loc.join(&name),
            id: name,
            overrides: Overrides::default(),
        })
        .collect();
    if inputs.is_empty() {
        return Err(Error::NoInputs {
            location: loc.to_string(),
            extensions: AUDIO_EXTENSIONS.join(", "),
        });
    }
    Ok(inputs)
}

fn is_audio(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| AUDIO_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// Parses a JSON Lines manifest read from `loc` (blank lines are allowed; ids must be unique).
pub fn parse_manifest(text: &str, loc: &Location) -> Result<Vec<Input>, Error> {
    let base = loc.parent();
    let mut inputs = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let bad = |message: String| Error::Manifest {
            location: loc.to_string(),
            line: line_no,
            message,
        };
        if raw.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(raw).map_err(|e| bad(format!("{e}")))?;
        let written = match (&line.path, &line.url) {
            (Some(p), None) => p.clone(),
            (None, Some(u)) => u.clone(),
            _ => return Err(bad("give exactly one of \"path\" and \"url\"".into())),
        };
        let source = Location::parse(&written, Some(&base)).map_err(bad)?;
        if let Some(t) = &line.overrides.task {
            t.parse::<Task>().map_err(bad)?;
        }
        let id = line.id.unwrap_or(written);
        if let Some(first) = seen.insert(id.clone(), line_no) {
            return Err(bad(format!(
                "id {id:?} is already used on line {first}; ids must be unique"
            )));
        }
        inputs.push(Input {
            id,
            source,
            overrides: line.overrides,
        });
    }
    if inputs.is_empty() {
        return Err(Error::Manifest {
            location: loc.to_string(),
            line: 0,
            message: "the manifest lists no inputs".into(),
        });
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc() -> Location {
        Location::Local("/archive/list.jsonl".into())
    }

    #[test]
    fn lines_resolve_paths_and_keep_overrides() {
        let text = r#"{"path": "a.wav"}

{"url": "s3://b/x/c.flac", "id": "c", "language": "en", "beam_size": 1, "meta": {"k": 1}}
{"path": "/abs/d.wav", "task": "translate", "prompt": "Names."}"#;
        let inputs = parse_manifest(text, &loc()).unwrap();
        assert_eq!(inputs.len(), 3);
        assert_eq!(inputs[0].id, "a.wav");
        assert_eq!(inputs[0].source, Location::Local("/archive/a.wav".into()));
        assert_eq!(inputs[1].id, "c");
        assert_eq!(inputs[1].overrides.beam_size, Some(1));
        let o = inputs[2]
            .overrides
            .apply(&TranscribeOptions::default())
            .unwrap();
        assert_eq!(o.task, Task::Translate);
        assert_eq!(o.initial_prompt.as_deref(), Some("Names."));
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        for (text, line, words) in [
            ("{\"path\": \"a.wav\"}\n{\"path\": ", 2, "EOF"),
            (
                "{\"path\": \"a.wav\", \"lang\": \"en\"}",
                1,
                "unknown field",
            ),
            ("{\"id\": \"x\"}", 1, "exactly one"),
            ("{\"path\": \"a.wav\"}\n{\"path\": \"a.wav\"}", 2, "line 1"),
            (
                "{\"path\": \"a.wav\", \"task\": \"summarise\"}",
                1,
                "unknown task",
            ),
        ] {
            let e = parse_manifest(text, &loc()).unwrap_err().to_string();
            assert!(
                e.contains(&format!("/archive/list.jsonl, line {line}")) && e.contains(words),
                "{e}"
            );
        }
    }
}
