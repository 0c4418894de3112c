//! A Hugging Face model directory: `config.json`, `generation_config.json` (absent when empty)
//! and `model.safetensors`, loaded, then every tensor converted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whisper_model::weights::Checkpoint;
use xdna_whisper_fuzz::{parts, put, scratch};

fuzz_target!(|data: &[u8]| {
    let [config, generation, model] = parts::<3>(data);
    let dir = scratch();
    put(dir, "config.json", Some(config));
    put(
        dir,
        "generation_config.json",
        (!generation.is_empty()).then_some(generation),
    );
    put(dir, "model.safetensors", Some(model));
    if let Ok(ck) = Checkpoint::load(dir) {
        for name in ck.names() {
            if let Ok(t) = ck.get(&name) {
                assert_eq!(t.numel(), t.data.len(), "{name}");
            }
        }
    }
});
