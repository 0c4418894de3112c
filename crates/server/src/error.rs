//! Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with the HTTP
//! status that says whose fault it is.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault (`file`, `language`, ...).
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// 400 about a request field.
    pub fn invalid(param: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message).param(param)
    }

    pub fn param(mut self, param: &'static str) -> ApiError {
        self.param = Some(param);
        self
    }

    pub fn code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    /// OpenAI's error `type` for the status.
    pub fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            StatusCode::NOT_FOUND => "not_found_error",
            s if s.is_server_error() => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// The JSON body, also sent as the payload of an error event in a stream.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Body {
            error: Inner {
                message: &self.message,
                kind: self.kind(),
                param: self.param,
                code: self.code,
            },
        })
        .expect("an error serialises")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.to_json(),
        )
            .into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS
            || self.status == StatusCode::SERVICE_UNAVAILABLE
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A library error as the client should see it.
impl From<whisper_model::Error> for ApiError {
    fn from(e: whisper_model::Error) -> ApiError {
        use whisper_model::{AudioError, Error};
        match &e {
            Error::Audio(AudioError::TooLong { .. }) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
                    .param("file")
                    .code("audio_too_long")
            }
            Error::Audio(_) | Error::NoAudio { .. } | Error::NonFiniteSample { .. } => {
                ApiError::invalid("file", e.to_string()).code("invalid_audio")
            }
            Error::UnknownLanguage(_) | Error::EnglishOnly(_) => {
                ApiError::invalid("language", e.to_string()).code("unsupported_language")
            }
            Error::TranslateEnglishOnly => ApiError::invalid("model", e.to_string()),
            Error::InvalidOption { .. } => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
            Error::Cancelled => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the transcription was cancelled (the server is shutting down or the request timed out)",
            ),
            _ => {
                tracing::error!("transcription failed: {e}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("transcription failed: {e}"))
            }
        }
    }
}
