//! OpenAI Whisper on the npu-runtime kernel API.
