//! Whisper with every kernel call through the dataflow emulator of its rendered NPU design
//! (`BackendKind::Emu`, nothing on the CPU) decodes the same tokens as the CPU backend that
//! predicts the NPU's rounding (`Numerics::Npu`): the whole NPU path short of the silicon.

mod support;

use std::path::{Path, PathBuf};

use whisper_model::{
    load_audio, BackendKind, Device, KernelSource, LoadOptions, Numerics, TranscribeOptions,
    Whisper,
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The tiny models' kernels rendered into `out` (emit-only, each design emulated once by the
/// build); returns the manifest.
fn render_tiny_kernels(out: &Path) -> PathBuf {
    let mut opts = kernel_build::BuildOptions::new(&workspace());
    opts.out_dir = out.to_path_buf();
    opts.emit_only = true;
    opts.filter = Some("tiny".to_string());
    let report = kernel_build::build(&opts).unwrap_or_else(|e| panic!("{e}"));
    report.manifest_path
}

fn tokens(w: &Whisper, samples: &[f32]) -> Vec<u32> {
    let opts = TranscribeOptions {
        beam_size: 1,
        language: Some("en".into()),
        ..TranscribeOptions::default()
    };
    let t = w
        .transcribe(samples, &opts)
        .unwrap_or_else(|e| panic!("{e}"));
    t.segments.iter().flat_map(|s| s.tokens.clone()).collect()
}

#[test]
fn jfk_through_the_emulated_designs_equals_npu_numerics_on_the_cpu() {
    let jfk = workspace().join("../shared/data/speech/audio16k/jfk.wav");
    if !jfk.exists() {
        support::skip(format!(
            "no {} (the shared speech data is missing)",
            jfk.display()
        ));
        return;
    }
    let model = whisper_fetch::model_dir("tiny.en", &whisper_fetch::default_cache_dir(), true)
        .expect("model available (cargo xtask fetch-model tiny.en)");
    let out = tempfile::tempdir().unwrap();
    let manifest = render_tiny_kernels(out.path());
    let samples = load_audio(&jfk).expect("audio decodes");

    let emu = Whisper::load(
        &model,
        &LoadOptions {
            backend: BackendKind::Emu,
            numerics: Numerics::Npu,
            kernels: KernelSource::Manifest(manifest.clone()),
            allow_cpu_fallback: false,
            device: Some(Device::Npu1),
            ..LoadOptions::default()
        },
    )
    .expect("model loads on the emulator");
    let cpu = Whisper::load(
        &model,
        &LoadOptions {
            backend: BackendKind::Cpu,
            numerics: Numerics::Npu,
            kernels: KernelSource::Manifest(manifest),
            device: Some(Device::Npu1),
            ..LoadOptions::default()
        },
    )
    .expect("model loads on the CPU");
    let want = tokens(&cpu, &samples);
    let got = tokens(&emu, &samples);
    assert!(want.len() > 20, "JFK decodes to a sentence: {want:?}");
    assert_eq!(got, want, "tokens through the emulated designs");
}
