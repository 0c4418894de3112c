//! The response bodies of each `response_format`, in OpenAI's shapes.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use whisper_model::output::{render, Format};
use whisper_model::tokenizer::language_name;
use whisper_model::{Task, Transcript};

use crate::request::{Granularities, ResponseFormat};

/// OpenAI's `usage` of audio models: seconds of input, rounded up.
pub fn usage(duration: f32) -> serde_json::Value {
    json!({ "type": "duration", "seconds": duration.max(0.0).ceil() as u64 })
}

#[derive(Serialize)]
struct VerboseSegment<'a> {
    id: usize,
    seek: usize,
    start: f64,
    end: f64,
    text: &'a str,
    tokens: &'a [u32],
    temperature: f64,
    avg_logprob: f64,
    compression_ratio: f64,
    no_speech_prob: f64,
}

/// A word of `timestamp_granularities[]=word`, as OpenAI returns it (no leading space).
#[derive(Serialize)]
struct VerboseWord<'a> {
    word: &'a str,
    start: f64,
    end: f64,
}

/// The f64 that prints like the f32 (7.54, not 7.539999961853027): `json!` widens f32 exactly.
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::NAN)
}

pub fn respond(
    t: &Transcript,
    format: ResponseFormat,
    task: Task,
    granularities: Granularities,
) -> Response {
    let text = t.text.trim();
    match format {
        ResponseFormat::Json => {
            axum::Json(json!({ "text": text, "usage": usage(t.duration) })).into_response()
        }
        ResponseFormat::Text => plain("text/plain; charset=utf-8", format!("{text}\n")),
        ResponseFormat::Srt => plain("text/plain; charset=utf-8", render(t, Format::Srt)),
        ResponseFormat::Vtt => plain("text/vtt; charset=utf-8", render(t, Format::Vtt)),
        ResponseFormat::VerboseJson => {
            let segments: Vec<VerboseSegment> = t
                .segments
                .iter()
                .map(|s| VerboseSegment {
                    id: s.id,
                    seek: s.seek,
                    start: decimal(s.start),
                    end: decimal(s.end),
                    text: &s.text,
                    tokens: &s.tokens,
                    temperature: decimal(s.temperature),
                    avg_logprob: decimal(s.avg_logprob),
                    compression_ratio: decimal(s.compression_ratio),
                    no_speech_prob: decimal(s.no_speech_prob),
                })
                .collect();
            let mut body = json!({
                "task": task.name(),
                // OpenAI names the language in English words here ("english").
                "language": language_name(&t.language).unwrap_or(&t.language),
                "duration": decimal(t.duration),
                "text": text,
                "usage": usage(t.duration),
            });
            if granularities.segment {
                body["segments"] = json!(segments);
            }
            if granularities.word {
                let words: Vec<VerboseWord> = t
                    .segments
                    .iter()
                    .flat_map(|s| &s.words)
                    .map(|w| VerboseWord {
                        word: w.word.trim(),
                        start: decimal(w.start),
                        end: decimal(w.end),
                    })
                    .collect();
                body["words"] = json!(words);
            }
            axum::Json(body).into_response()
        }
    }
}

fn plain(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimals_print_as_the_f32_does() {
        assert_eq!(serde_json::json!(super::decimal(7.54)).to_string(), "7.54");
        assert_eq!(
            serde_json::json!(super::decimal(f32::NAN)).to_string(),
            "null"
        );
    }
}
