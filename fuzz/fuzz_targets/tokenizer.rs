//! `tokenizer.json` through the Whisper tokenizer's loader (merge repair, special tokens,
//! languages), then encoding and decoding with what was loaded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whisper_model::tokenizer::WhisperTokenizer;
use xdna_whisper_fuzz::{put, scratch};

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    put(dir, "tokenizer.json", Some(data));
    let Ok(tk) = WhisperTokenizer::from_dir(dir) else {
        return;
    };
    let ids = tk.encode(" And so my fellow Americans");
    let _ = tk.decode(&ids);
    let mut all = tk.sot_sequence(tk.language_token("en"), false);
    all.extend([tk.timestamp_begin(), tk.eot(), tk.no_timestamps(), u32::MAX]);
    let _ = tk.decode_with_timestamps(&all);
    let _ = tk.non_speech_tokens();
    for (code, id) in tk.languages() {
        assert_eq!(tk.language_of(id), Some(code.as_str()));
    }
});
