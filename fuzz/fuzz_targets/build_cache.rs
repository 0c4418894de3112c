//! The build cache's readers: a `stamp.json` verified against its directory, and the kernel
//! manifest (whose specs the runtime then plans). The same bytes go to both.
#![no_main]

use std::path::Path;

use kernel_spec::manifest::Manifest;
use libfuzzer_sys::fuzz_target;
use xdna_whisper_fuzz::{put, scratch};

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    put(dir, "design.mlir", Some(b"module {}\n"));
    put(dir, "kernel.cc", Some(b"int x;\n"));
    put(dir, kernel_build::stamp::STAMP_FILE, Some(data));
    if let Ok(stamp) = kernel_build::stamp::verify_dir(dir, "k", "h") {
        assert!(!stamp.files.is_empty());
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("generated/manifest.json");
    if let Ok(m) = Manifest::from_json(path, text) {
        let again =
            Manifest::from_json(path, &m.to_json()).expect("a manifest we wrote reads back");
        assert_eq!(again.kernels.len(), m.kernels.len());
        for e in m.kernels.iter().take(4) {
            let _ = kernel_spec::check(&e.spec);
        }
    }
});
