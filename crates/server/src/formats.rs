//! The response bodies of each `response_format`, in OpenAI's shapes.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use whisper_model::output::{render, Format};
use whisper_model::tokenizer::language_name;
use whisper_model::{Task, Transcript};

use crate::request::ResponseFormat;

/// OpenAI's `usage` of audio models: seconds of input, rounded up.
pub fn usage(duration: f32) -> serde_json::Value {
    json!({ "type": "duration", "seconds": duration.max(0.0).ceil() as u64 })
}

#[derive(Serialize)]
struct VerboseSegment<'a> {
    id: usize,
    seek: usize,
    start: f32,
    end: f32,
    text: &'a str,
    tokens: &'a [u32],
    temperature: f32,
    avg_logprob: f32,
    compression_ratio: f32,
    no_speech_prob: f32,
}

pub fn respond(t: &Transcript, format: ResponseFormat, task: Task) -> Response {
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
                    start: s.start,
                    end: s.end,
                    text: &s.text,
                    tokens: &s.tokens,
                    temperature: s.temperature,
                    avg_logprob: s.avg_logprob,
                    compression_ratio: s.compression_ratio,
                    no_speech_prob: s.no_speech_prob,
                })
                .collect();
            axum::Json(json!({
                "task": task.name(),
                // OpenAI names the language in English words here ("english").
                "language": language_name(&t.language).unwrap_or(&t.language),
                "duration": t.duration,
                "text": text,
                "segments": segments,
                "usage": usage(t.duration),
            }))
            .into_response()
        }
    }
}

fn plain(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}
