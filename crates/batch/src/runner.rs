//! Transcribes the inputs of one shard, `jobs` files at a time (their decoding steps share
//! decoder calls through the one model), skipping those a previous run finished. Per input:
//! read the audio, hash it, derive the key; if `<key>.json` is a complete record, skip; else
//! remove the key's stale temporaries, decode, transcribe, write the outputs, then the record,
//! then the index entry. A failing input is recorded and the run goes on; only storage errors
//! on the output location stop it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use whisper_model::output::{render_with, WriterOptions};
use whisper_model::{decode_audio_bytes, Format, TranscribeOptions, Whisper};

use crate::error::Error;
use crate::input::Input;
use crate::key::{options_json, output_key, sha256_hex, ModelIdentity};
use crate::record::{to_bytes, IndexEntry, OutputFile, Record, Status, Timings, RECORD_VERSION};
use crate::store::{Location, Storage};

/// What a run does besides its inputs.
#[derive(Clone, Debug)]
pub struct BatchConfig {
    pub output: Location,
    pub formats: Vec<Format>,
    pub writer: WriterOptions,
    /// The run's options, checked against the model; inputs may override some.
    pub options: TranscribeOptions,
    pub model: ModelIdentity,
    /// Do not retry inputs recorded as failed.
    pub skip_failed: bool,
    /// Inputs transcribed at once (at least 1). With int8 compute their results are
    /// bit-identical to one at a time; in f32, up to the summation order of merged steps.
    pub jobs: usize,
}

/// How one input ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Done {
        key: String,
        audio_seconds: f64,
        transcribe_seconds: f64,
    },
    /// A previous run finished it (or, with `skip_failed`, recorded it as failed).
    Skipped {
        key: Option<String>,
        failed: bool,
    },
    Failed {
        key: Option<String>,
        error: String,
    },
}

/// Told about the run as it goes (a progress bar, log lines, nothing).
pub trait Progress: Sync {
    fn begin(&self, _inputs: usize) {}
    fn input_started(&self, _index: usize, _input: &Input) {}
    fn input_finished(&self, _index: usize, _input: &Input, _outcome: &Outcome) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub inputs: usize,
    /// Transcribed in this run.
    pub done: usize,
    /// Finished by a previous run.
    pub skipped: usize,
    /// Failed in this run, or recorded as failed and not retried (`skipped_failed` of them).
    pub failed: usize,
    pub skipped_failed: usize,
    /// Audio transcribed in this run.
    pub audio_seconds: f64,
    pub audio_hours: f64,
    pub transcribe_seconds: f64,
    pub wall_seconds: f64,
    /// wall_seconds / audio_seconds of this run (below 1: faster than real time).
    pub real_time_factor: Option<f64>,
}

/// Output file name of `format` for `key` (`json` is `<key>.transcript.json`: `<key>.json`
/// is the record).
pub fn output_name(key: &str, format: Format) -> String {
    match format {
        Format::Json => format!("{key}.transcript.json"),
        f => format!("{key}.{}", f.name()),
    }
}

/// Runs `inputs` (already cut to the shard) with `whisper`.
pub fn run(
    whisper: &Whisper,
    storage: &Storage,
    inputs: &[Input],
    config: &BatchConfig,
    progress: &dyn Progress,
) -> Result<Summary, Error> {
    let t0 = Instant::now();
    let mut s = Summary {
        inputs: inputs.len(),
        ..Summary::default()
    };
    progress.begin(inputs.len());
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let outcomes: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; inputs.len()]);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..config.jobs.clamp(1, inputs.len().max(1)) {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = inputs.get(i) else { break };
                    progress.input_started(i, input);
                    match one(whisper, storage, input, config) {
                        Ok(outcome) => {
                            progress.input_finished(i, input, &outcome);
                            outcomes.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(outcome);
                        }
                        // A storage error on the output location stops the run.
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
    for outcome in outcomes.into_iter().flatten() {
        match &outcome {
            Outcome::Done {
                audio_seconds,
                transcribe_seconds,
                ..
            } => {
                s.done += 1;
                s.audio_seconds += audio_seconds;
                s.transcribe_seconds += transcribe_seconds;
            }
            Outcome::Skipped { failed: false, .. } => s.skipped += 1,
            Outcome::Skipped { failed: true, .. } => {
                s.failed += 1;
                s.skipped_failed += 1;
            }
            Outcome::Failed { .. } => s.failed += 1,
        }
    }
    s.wall_seconds = t0.elapsed().as_secs_f64();
    s.audio_hours = s.audio_seconds / 3600.0;
    s.real_time_factor = (s.audio_seconds > 0.0).then(|| s.wall_seconds / s.audio_seconds);
    Ok(s)
}

fn one(
    whisper: &Whisper,
    storage: &Storage,
    input: &Input,
    config: &BatchConfig,
) -> Result<Outcome, Error> {
    let out = &config.output;
    let index_loc = out.join(&IndexEntry::name(&input.id));
    let mut entry = IndexEntry {
        input_id: input.id.clone(),
        source: input.source.to_string(),
        key: None,
        status: Status::Failed,
        error: None,
    };
    if config.skip_failed {
        if let Some(prev) = read_json::<IndexEntry>(storage, &index_loc)? {
            if prev.status == Status::Failed && prev.input_id == input.id {
                return Ok(Outcome::Skipped {
                    key: prev.key,
                    failed: true,
                });
            }
        }
    }

    let t_read = Instant::now();
    let bytes = match storage.get(&input.source) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return fail_unread(storage, &index_loc, entry, "no such file or object".into())
        }
        Err(e) => return fail_unread(storage, &index_loc, entry, e.to_string()),
    };
    let read_seconds = t_read.elapsed().as_secs_f64();
    let audio_sha256 = sha256_hex(&bytes);
    let (options, option_error) = match input.overrides.apply(&config.options) {
        Ok(o) => match whisper.check_options(&o) {
            Ok(checked) => (checked, None),
            Err(e) => (o, Some(format!("options: {e}"))),
        },
        Err(e) => (config.options.clone(), Some(format!("options: {e}"))),
    };
    let options_value = options_json(&options, &config.writer);
    let key = output_key(&audio_sha256, &options_value, &config.model);
    entry.key = Some(key.clone());
    let record_loc = out.join(&Record::name(&key));
    let wanted: Vec<String> = config
        .formats
        .iter()
        .map(|f| f.name().to_string())
        .collect();

    if let Some(prev) = read_json::<Record>(storage, &record_loc)? {
        let failed = prev.status == Status::Failed;
        if (failed && config.skip_failed) || prev.is_complete(storage, out, &wanted) {
            entry.status = prev.status;
            entry.error = prev.error.clone();
            put_if_changed(storage, &index_loc, &entry)?;
            return Ok(Outcome::Skipped {
                key: Some(key),
                failed,
            });
        }
    }
    storage.remove_stale_temporaries(out, &key)?;
    storage.remove_stale_temporaries(&index_loc.parent(), &sha256_hex(input.id.as_bytes()))?;

    let mut record = Record {
        version: RECORD_VERSION,
        key: key.clone(),
        input_id: input.id.clone(),
        source: input.source.to_string(),
        audio_sha256,
        audio_bytes: bytes.len() as u64,
        model: config.model.clone(),
        options: options_value,
        status: Status::Failed,
        error: None,
        audio_seconds: None,
        language: None,
        outputs: Vec::new(),
        timings: Timings {
            read_seconds,
            ..Timings::default()
        },
    };
    let result = option_error.map_or_else(
        || transcribe(whisper, &bytes, input, &options, &mut record),
        Err,
    );
    let transcript = match result {
        Ok(t) => t,
        Err(error) => {
            record.error = Some(error.clone());
            storage.put(&record_loc, &to_bytes(&record))?;
            entry.error = Some(error.clone());
            put_if_changed(storage, &index_loc, &entry)?;
            return Ok(Outcome::Failed {
                key: Some(key),
                error,
            });
        }
    };
    for &format in &config.formats {
        let text = render_with(&transcript, format, &config.writer);
        let name = output_name(&key, format);
        storage.put(&out.join(&name), text.as_bytes())?;
        record.outputs.push(OutputFile {
            format: format.name().to_string(),
            name,
            sha256: sha256_hex(text.as_bytes()),
            bytes: text.len() as u64,
        });
    }
    record.status = Status::Done;
    storage.put(&record_loc, &to_bytes(&record))?;
    entry.status = Status::Done;
    put_if_changed(storage, &index_loc, &entry)?;
    Ok(Outcome::Done {
        key,
        audio_seconds: record.audio_seconds.unwrap_or(0.0),
        transcribe_seconds: record.timings.transcribe_seconds,
    })
}

fn transcribe(
    whisper: &Whisper,
    bytes: &[u8],
    input: &Input,
    options: &TranscribeOptions,
    record: &mut Record,
) -> Result<whisper_model::Transcript, String> {
    let t = Instant::now();
    let samples = decode_audio_bytes(bytes, &input.source.name()).map_err(|e| e.to_string())?;
    record.timings.decode_seconds = t.elapsed().as_secs_f64();
    let audio_seconds = samples.len() as f64 / whisper_model::SAMPLE_RATE as f64;
    record.audio_seconds = Some(audio_seconds);
    let t = Instant::now();
    let transcript = whisper
        .transcribe(&samples, options)
        .map_err(|e| format!("{}: {e}", input.source))?;
    let seconds = t.elapsed().as_secs_f64();
    record.timings.transcribe_seconds = seconds;
    record.timings.real_time_factor = (audio_seconds > 0.0).then(|| seconds / audio_seconds);
    record.language = Some(transcript.language.clone());
    Ok(transcript)
}

fn fail_unread(
    storage: &Storage,
    index_loc: &Location,
    mut entry: IndexEntry,
    error: String,
) -> Result<Outcome, Error> {
    let error = format!("{}: {error}", entry.source);
    entry.error = Some(error.clone());
    put_if_changed(storage, index_loc, &entry)?;
    Ok(Outcome::Failed { key: None, error })
}

/// A JSON file, `None` when it is missing or unreadable as `T` (a corrupt file is redone).
fn read_json<T: serde::de::DeserializeOwned>(
    storage: &Storage,
    loc: &Location,
) -> Result<Option<T>, Error> {
    Ok(storage
        .get(loc)?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

fn put_if_changed(storage: &Storage, loc: &Location, entry: &IndexEntry) -> Result<(), Error> {
    let bytes = to_bytes(entry);
    if storage.get(loc)?.as_deref() != Some(bytes.as_slice()) {
        storage.put(loc, &bytes)?;
    }
    Ok(())
}
