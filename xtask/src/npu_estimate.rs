//! `cargo xtask bench --npu-estimate`: what Whisper would take on npu1 and npu2, estimated.
//!
//! The files are transcribed on the CPU in NPU numerics, so that every call is served by the
//! kernel entry the NPU would run; each call adds that entry's emulated time (the dataflow
//! emulator's event-level model of its design, recorded in the manifest by `build-kernels`).
//! The sum over a transcription, against the audio's length, gives an estimated real-time
//! factor of the kernels alone. It is an estimate from a model, not a measurement: the host's
//! share (log-mel, search, packing) and the driver's per-call overhead are not in it.

use xdna_whisper::model_args::{BackendArg, DeviceArg, ModelArgs, NumericsArg};

/// Prints, per device, the estimated NPU time of the kernels of transcribing `samples`.
pub fn report(model: &ModelArgs, samples: &[Vec<f32>], audio_seconds: f64) -> anyhow::Result<()> {
    let manifest = crate::build_kernels::emitted_manifest()?;
    println!(
        "{:<6} {:>10} {:>12} {:>14} {:>12}",
        "device", "calls", "NPU est. s", "x realtime*", "calls w/o est."
    );
    for (device, arg) in [("npu1", DeviceArg::Npu1), ("npu2", DeviceArg::Npu2)] {
        let mut args = model.clone();
        args.backend = BackendArg::Cpu;
        args.numerics = NumericsArg::Npu;
        args.device = Some(arg);
        args.kernels = Some(manifest.clone());
        let (whisper, options) = args.load(true)?;
        for s in samples {
            whisper.transcribe(s, &options)?;
        }
        let report = whisper.profile_report();
        let calls: u64 = report.entries.iter().map(|e| e.calls).sum();
        let uncovered: u64 = report
            .entries
            .iter()
            .map(|e| e.calls_without_estimate)
            .sum();
        let seconds = report
            .entries
            .iter()
            .map(|e| e.npu_estimate_us)
            .sum::<f64>()
            / 1e6;
        println!(
            "{device:<6} {calls:>10} {seconds:>12.3} {:>14.1} {uncovered:>12}",
            audio_seconds / seconds
        );
        // Calls no kernel entry serves (they would run on the CPU): say which, so that the
        // estimate's gaps are in plain view.
        for e in report.families() {
            if e.calls_without_estimate > 0 {
                println!(
                    "    {}: {} of {} calls have no kernel (they would run on the CPU)",
                    e.family, e.calls_without_estimate, e.calls
                );
            }
        }
    }
    println!(
        "* estimated from the emulator's event-level model of each kernel's design (core functions at \
         their cycle counts, DMAs at channel and DDR bandwidth), summed over the kernel calls of \
         the transcription; not a measurement, and without the host's share of the work"
    );
    Ok(())
}
