//! Audio decoding of WAV and AIFF (symphonia probes the container from its bytes; the .wav name is only a hint), through resampling and the log-mel.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xdna_whisper_fuzz::audio(data, "fuzz.wav"));
