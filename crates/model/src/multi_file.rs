//! Several recordings in one call: transcribed concurrently, so that their decoding steps are
//! merged into shared decoder calls (see [`crate::step_batcher`]) and every read of the
//! decoder's weights serves several recordings.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::{CancelToken, Error, TranscribeOptions, Transcript, Whisper};

impl Whisper {
    /// Transcribes several recordings, `concurrency` at a time, and returns one result per
    /// recording, in order; a recording that fails does not stop the others. Each recording is
    /// transcribed exactly as [`Whisper::transcribe`] would (its windows, prompts, fallback and
    /// timestamps), while the decoding steps of the recordings in flight run as one decoder
    /// call: the same results up to the summation order of products over more rows.
    pub fn transcribe_files(
        &self,
        recordings: &[&[f32]],
        opts: &TranscribeOptions,
        concurrency: usize,
        cancel: &CancelToken,
    ) -> Result<Vec<Result<Transcript, Error>>, Error> {
        self.check_options(opts)?;
        if concurrency == 0 {
            return Err(Error::InvalidOption {
                option: "concurrency",
                message: "must be at least 1 (recordings transcribed at once)".into(),
            });
        }
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<Transcript, Error>>>> =
            Mutex::new(recordings.iter().map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..concurrency.min(recordings.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(samples) = recordings.get(i) else {
                        break;
                    };
                    let r = self
                        .transcribe_stream(samples, opts, cancel)
                        .and_then(|stream| stream.into_transcript());
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                });
            }
        });
        Ok(results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|r| r.expect("every recording was transcribed"))
            .collect())
    }
}
