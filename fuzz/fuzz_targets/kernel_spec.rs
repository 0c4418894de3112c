//! Kernel-spec TOML through parsing, the resource checks, the plan and rendering. The first byte
//! picks the family file the text is read as (the family comes from the file name).
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;

const FAMILIES: [&str; 5] = ["matmul", "attention", "ffn", "layernorm", "lm_head"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let file = PathBuf::from(format!(
        "kernel-specs/{}.toml",
        FAMILIES[usize::from(pick) % FAMILIES.len()]
    ));
    let templates = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../templates"));
    let Ok(specs) = kernel_spec::parse_file(&file, text) else {
        return;
    };
    for spec in specs.iter().take(4) {
        let _ = kernel_spec::canonical_form(spec);
        if kernel_spec::check(spec).is_ok() {
            let _ = kernel_spec::estimate_us(spec);
            let rendered = kernel_spec::render(spec, templates)
                .expect("an entry that passes the checks renders");
            assert!(!rendered.files.is_empty());
        }
    }
});
