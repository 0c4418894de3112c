//! Voice activity detection with Silero VAD v6 (MIT), implemented here from its published
//! network: which parts of a 16 kHz recording are speech, as spans with faster-whisper's rules,
//! grouped into windows, and a [`Timeline`] that maps times in the speech-only audio back to the
//! recording.
//!
//! [`SileroVad::load`] reads the weights from the wheel's 16 kHz ONNX file
//! (`silero_vad_16k_op15.onnx`, fetched by `whisper-fetch`); only 16 kHz audio is supported.

mod error;
mod net;
mod onnx;
mod spans;
mod timeline;
mod weights;

pub use error::VadError;
pub use spans::{speech_spans_from_probabilities, SpeechSpan, VadOptions};
pub use timeline::{collect_speech, merge_into_windows, Timeline, Window};

use std::path::Path;

/// Samples per VAD frame at 16 kHz (one probability each).
pub const FRAME_SAMPLES: usize = 512;
/// The only sample rate the model is run at.
pub const SAMPLE_RATE: usize = 16_000;

/// The loaded model. Stateless between calls: every call starts from silence.
#[derive(Debug)]
pub struct SileroVad {
    weights: weights::Weights,
}

impl SileroVad {
    /// Loads the weights from the Silero VAD v6 ONNX file at `path` (see `whisper_fetch::vad`).
    pub fn load(path: impl AsRef<Path>) -> Result<SileroVad, VadError> {
        let path = path.as_ref();
        let tensors = onnx::read_initializers(path)?;
        let weights = weights::Weights::from_tensors(path, tensors)?;
        Ok(SileroVad { weights })
    }

    /// The speech probability of each 512-sample frame of 16 kHz `audio` (the last frame is
    /// zero-padded), with the LSTM state and the 64-sample context carried from frame to frame.
    pub fn speech_probabilities(&self, audio: &[f32]) -> Vec<f32> {
        net::probabilities(&self.weights, audio)
    }

    /// The speech in 16 kHz `audio`, as sample ranges (faster-whisper's `get_speech_timestamps`).
    /// Check `options` with [`VadOptions::validate`] first: invalid values give meaningless
    /// spans (never a panic).
    pub fn speech_spans(&self, audio: &[f32], options: &VadOptions) -> Vec<SpeechSpan> {
        let probs = self.speech_probabilities(audio);
        speech_spans_from_probabilities(&probs, audio.len(), options)
    }
}
