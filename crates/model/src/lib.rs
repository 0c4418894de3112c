//! OpenAI Whisper on the npu-runtime kernel API: audio decoding, log-mel, checkpoint loading
//! (CTranslate2 and Hugging Face), the encoder/decoder network, decoding (greedy, beam search,
//! temperature fallback, timestamp rules), long-form transcription and output formats.

pub mod audio;
pub mod decoding;
pub mod eval;
pub mod evaluation;
pub mod fetch;
pub mod mel;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod tokenizer;
pub mod transcribe;
pub mod weights;
