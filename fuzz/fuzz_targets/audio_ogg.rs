//! Audio decoding of OGG/Vorbis, through resampling and the log-mel.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xdna_whisper_fuzz::audio(data, "fuzz.ogg"));
