//! The server's request body: a `Content-Type` header (first part; empty = a fixed multipart
//! boundary) and a multipart/form-data body, read as the transcription route reads it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xdna_whisper_fuzz::parts;

/// The upload limit of the fuzzed reads: small, so that the limit's path is reached too.
const MAX_UPLOAD: usize = 4096;

fuzz_target!(|data: &[u8]| {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime")
    });
    let [content_type, body] = parts::<2>(data);
    let content_type = match std::str::from_utf8(content_type) {
        Ok("") | Err(_) => "multipart/form-data; boundary=XdnaFuzzBoundary",
        Ok(ct) => ct,
    };
    let form = rt.block_on(whisper_server::form::read_body(
        content_type,
        body.to_vec(),
        MAX_UPLOAD,
    ));
    if let Ok(form) = form {
        if let Some(upload) = form.file {
            assert!(upload.bytes.len() <= MAX_UPLOAD);
        }
    }
});
