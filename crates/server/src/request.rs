//! Turning the fields of a request into a transcription job, with a 400 naming the field for
//! every value the server cannot honour.

use whisper_model::{Task, TranscribeOptions, Whisper};

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::form::{Form, Upload};

/// The `response_format` values of OpenAI's API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFormat {
    Json,
    Text,
    Srt,
    Vtt,
    VerboseJson,
}

impl ResponseFormat {
    const ALL: [(&'static str, ResponseFormat); 5] = [
        ("json", ResponseFormat::Json),
        ("text", ResponseFormat::Text),
        ("srt", ResponseFormat::Srt),
        ("vtt", ResponseFormat::Vtt),
        ("verbose_json", ResponseFormat::VerboseJson),
    ];

    fn parse(s: &str) -> Result<ResponseFormat, ApiError> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == s.trim())
            .map(|&(_, f)| f)
            .ok_or_else(|| {
                ApiError::invalid(
                    "response_format",
                    format!(
                        "unknown response_format {s:?}; use one of json, text, srt, vtt, verbose_json"
                    ),
                )
            })
    }
}

/// The timestamps a `verbose_json` response carries (`timestamp_granularities[]`): segments
/// unless only words are asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granularities {
    pub segment: bool,
    pub word: bool,
}

/// A checked request.
pub struct Job {
    pub upload: Upload,
    pub options: TranscribeOptions,
    pub format: ResponseFormat,
    pub granularities: Granularities,
    /// Server-sent events of the text as it is decoded.
    pub stream: bool,
}

/// An alias every OpenAI client sends by default.
pub const OPENAI_MODEL: &str = "whisper-1";

pub fn parse(
    form: Form,
    task: Task,
    config: &ServerConfig,
    whisper: &Whisper,
) -> Result<Job, ApiError> {
    let format = match &form.response_format {
        Some(f) => ResponseFormat::parse(f)?,
        None => ResponseFormat::Json,
    };
    if let Some(model) = form.model.as_deref().map(str::trim) {
        if !model.is_empty() && model != config.model_id && model != OPENAI_MODEL {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                format!(
                    "model {model:?} is not served here; this server serves {:?} (also as {OPENAI_MODEL:?})",
                    config.model_id
                ),
            )
            .param("model")
            .code("model_not_found"));
        }
    }
    let stream = match form
        .stream
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase())
    {
        None => false,
        Some(s) if s == "true" || s == "1" => true,
        Some(s) if s == "false" || s == "0" || s.is_empty() => false,
        Some(s) => {
            return Err(ApiError::invalid(
                "stream",
                format!("stream must be true or false, not {s:?}"),
            ))
        }
    };
    if stream && !matches!(format, ResponseFormat::Json | ResponseFormat::Text) {
        return Err(ApiError::invalid(
            "stream",
            "stream=true sends text events; use response_format json or text with it",
        ));
    }
    let mut granularities = Granularities {
        segment: form.timestamp_granularities.is_empty(),
        word: false,
    };
    for g in &form.timestamp_granularities {
        match g.trim() {
            "segment" => granularities.segment = true,
            "word" => granularities.word = true,
            other => {
                return Err(ApiError::invalid(
                    "timestamp_granularities[]",
                    format!("unknown timestamp granularity {other:?}; use segment or word"),
                ))
            }
        }
    }
    if !form.timestamp_granularities.is_empty() && format != ResponseFormat::VerboseJson {
        return Err(ApiError::invalid(
            "timestamp_granularities[]",
            "timestamp_granularities needs response_format verbose_json",
        ));
    }

    let mut options = TranscribeOptions {
        task,
        language: form
            .language
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty()),
        initial_prompt: form.prompt.filter(|p| !p.trim().is_empty()),
        word_timestamps: config.defaults.word_timestamps || granularities.word,
        ..config.defaults.clone()
    };
    if let Some(t) = &form.temperature {
        options.temperatures = temperatures(t, &config.defaults.temperatures)?;
    }
    let options = whisper.check_options(&options).map_err(ApiError::from)?;

    let upload = form.file.ok_or_else(|| {
        ApiError::invalid(
            "file",
            "the request has no `file` field; send the audio as a multipart file named `file`",
        )
    })?;
    if upload.bytes.is_empty() {
        return Err(ApiError::invalid(
            "file",
            format!("the uploaded file {:?} is empty (0 bytes)", upload.filename),
        )
        .code("invalid_audio"));
    }
    Ok(Job {
        upload,
        options,
        format,
        granularities,
        stream,
    })
}

/// OpenAI's `temperature`: 0 (or absent) keeps Whisper's fallback schedule; a value in (0, 1]
/// starts sampling there and falls back upwards in steps of 0.2.
fn temperatures(value: &str, default: &[f32]) -> Result<Vec<f32>, ApiError> {
    let t: f32 = value
        .trim()
        .parse()
        .ok()
        .filter(|t: &f32| (0.0..=1.0).contains(t))
        .ok_or_else(|| {
            ApiError::invalid(
                "temperature",
                format!("temperature must be a number from 0 to 1, not {value:?}"),
            )
        })?;
    if t == 0.0 {
        return Ok(default.to_vec());
    }
    let mut ts = vec![t];
    while let Some(&last) = ts.last() {
        let next = ((last + 0.2) * 100.0).round() / 100.0;
        if next > 1.0 + 1e-6 || ts.len() > 5 {
            break;
        }
        ts.push(next);
    }
    Ok(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_schedules() {
        let d = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
        assert_eq!(temperatures("0", &d).unwrap(), d.to_vec());
        assert_eq!(temperatures("0.5", &d).unwrap(), vec![0.5, 0.7, 0.9]);
        assert_eq!(temperatures("1", &d).unwrap(), vec![1.0]);
        for bad in ["-0.1", "1.5", "warm", "NaN", ""] {
            let e = temperatures(bad, &d).unwrap_err();
            assert_eq!(e.param, Some("temperature"), "{bad}");
        }
    }

    #[test]
    fn response_formats() {
        assert_eq!(
            ResponseFormat::parse("verbose_json").unwrap(),
            ResponseFormat::VerboseJson
        );
        let e = ResponseFormat::parse("xml").unwrap_err();
        assert!(
            e.message.contains("xml") && e.message.contains("verbose_json"),
            "{}",
            e.message
        );
    }
}
