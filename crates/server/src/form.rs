//! Reading the multipart body of a transcription request: the audio is taken chunk by chunk up
//! to the upload limit, every other field up to a small limit; anything malformed is a 400.

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{FromRequest, Multipart};
use axum::http::{header, Request, StatusCode};

use crate::error::ApiError;

/// Largest non-file field (a prompt is at most a few hundred tokens).
const MAX_FIELD_BYTES: usize = 64 * 1024;

/// The uploaded audio file.
pub struct Upload {
    pub bytes: Vec<u8>,
    pub filename: String,
}

/// The fields of a request, as sent (checked in [`crate::request`]).
#[derive(Default)]
pub struct Form {
    pub file: Option<Upload>,
    pub model: Option<String>,
    pub language: Option<String>,
    pub prompt: Option<String>,
    pub response_format: Option<String>,
    pub temperature: Option<String>,
    pub timestamp_granularities: Vec<String>,
    pub stream: Option<String>,
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large",
        )
        .code("upload_too_large");
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!(
            "malformed or truncated multipart/form-data body: {}",
            e.body_text()
        ),
    )
    .code("malformed_body")
}

/// Reads every field of the body. Unknown fields are skipped (clients send newer OpenAI
/// fields), but read within the same limits.
pub async fn read_form(multipart: &mut Multipart, max_upload: usize) -> Result<Form, ApiError> {
    let mut form = Form::default();
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                if form.file.is_some() {
                    return Err(ApiError::invalid(
                        "file",
                        "more than one `file` field; send one audio file per request",
                    ));
                }
                let filename = field.file_name().unwrap_or("upload").to_string();
                let bytes = read_limited(&mut field, max_upload).await.map_err(|e| {
                    e.unwrap_or_else(|| {
                        ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!(
                                "the audio file is larger than this server's limit of {} bytes ({:.1} MiB)",
                                max_upload,
                                max_upload as f64 / (1024.0 * 1024.0)
                            ),
                        )
                        .param("file")
                        .code("upload_too_large")
                    })
                })?;
                form.file = Some(Upload { bytes, filename });
            }
            _ => {
                let bytes = read_limited(&mut field, MAX_FIELD_BYTES)
                    .await
                    .map_err(|e| {
                        e.unwrap_or_else(|| {
                            ApiError::new(
                                StatusCode::BAD_REQUEST,
                                format!(
                                    "the field `{name}` is longer than {MAX_FIELD_BYTES} bytes"
                                ),
                            )
                        })
                    })?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("the field `{name}` is not UTF-8 text"),
                    )
                })?;
                match name.as_str() {
                    "model" => form.model = Some(text),
                    "language" => form.language = Some(text),
                    "prompt" => form.prompt = Some(text),
                    "response_format" => form.response_format = Some(text),
                    "temperature" => form.temperature = Some(text),
                    "timestamp_granularities[]" | "timestamp_granularities" => {
                        form.timestamp_granularities.push(text)
                    }
                    "stream" => form.stream = Some(text),
                    _ => tracing::debug!("ignoring the unknown form field {name:?}"),
                }
            }
        }
    }
    Ok(form)
}

/// Reads a whole body held in memory, given its `Content-Type` header, as the transcription
/// route reads a request (used by the fuzz target and tests of the form reader).
pub async fn read_body(
    content_type: &str,
    body: Vec<u8>,
    max_upload: usize,
) -> Result<Form, ApiError> {
    let malformed = |detail: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "expected a multipart/form-data body with the audio in a `file` field ({detail})"
            ),
        )
        .code("malformed_body")
    };
    let req = Request::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .map_err(|e| malformed(e.to_string()))?;
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|e| malformed(e.to_string()))?;
    read_form(&mut multipart, max_upload).await
}

/// A field's bytes, chunk by chunk; `Err(None)` once it exceeds `limit`.
async fn read_limited(field: &mut Field<'_>, limit: usize) -> Result<Vec<u8>, Option<ApiError>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| Some(multipart_error(e)))? {
        if bytes.len() + chunk.len() > limit {
            return Err(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=B";

    fn body(file: &[u8]) -> Vec<u8> {
        let mut b = b"--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n".to_vec();
        b.extend(file);
        b.extend(b"\r\n--B--\r\n");
        b
    }

    fn read(ct: &str, b: Vec<u8>, max: usize) -> Result<Form, ApiError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(read_body(ct, b, max))
    }

    #[test]
    fn bodies_parse_within_their_limits() {
        let f = read(CT, body(b"RIFF1234"), 8).unwrap();
        assert_eq!(f.model.as_deref(), Some("whisper-1"));
        let up = f.file.unwrap();
        assert_eq!(
            (up.bytes.as_slice(), up.filename.as_str()),
            (&b"RIFF1234"[..], "a.wav")
        );
        let e = read(CT, body(b"RIFF12345"), 8).err().unwrap();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        let e = read(CT, body(b"x")[..20].to_vec(), 8).err().unwrap();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = read("text/plain", body(b"x"), 8).err().unwrap();
        assert!(e.message.contains("multipart/form-data"), "{}", e.message);
    }
}
