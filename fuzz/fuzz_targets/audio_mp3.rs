//! Audio decoding of MP3 (MPEG audio has no magic number: the .mp3 hint makes the probe try it), through resampling and the log-mel.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xdna_whisper_fuzz::audio(data, "fuzz.mp3"));
