//! `kernel-verify`: checks every kernel spec entry against its MLIR reference (see the library).
//! Usually run through `cargo xtask verify-kernels`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use kernel_verify::aie::{check_design, core_target, find_aie_opt, AieOpt};
use kernel_verify::{Verifier, DEFAULT_SEED};

#[derive(Parser)]
#[command(
    name = "kernel-verify",
    about = "Verify kernel specs against an MLIR reference JIT-run with melior"
)]
struct Args {
    /// Directory of the kernel spec TOML files.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../kernel-specs"))]
    specs: PathBuf,
    /// Template directory (for the aie-opt check of the rendered designs).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates"))]
    templates: PathBuf,
    /// Only entries whose name contains this string.
    #[arg(long)]
    filter: Option<String>,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Write each entry's MLIR reference module into this directory.
    #[arg(long)]
    emit_mlir: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("kernel-verify: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<bool> {
    let specs = kernel_spec::load_dir(&args.specs)?;
    let specs: Vec<_> = specs
        .into_iter()
        .filter(|s| args.filter.as_deref().is_none_or(|f| s.name.contains(f)))
        .collect();
    if specs.is_empty() {
        anyhow::bail!(
            "no spec entry in {} matches --filter {:?}",
            args.specs.display(),
            args.filter.as_deref().unwrap_or("")
        );
    }
    if let Some(dir) = &args.emit_mlir {
        std::fs::create_dir_all(dir)?;
    }
    let start = Instant::now();
    let mut verifier = Verifier::new(args.seed);
    let (mut passed, mut failed) = (0usize, 0usize);
    println!(
        "{:<30} {:>10} {:>10} {:>9} {:>9}  result",
        "entry", "max_abs", "max_rel", "ref_s", "total_s"
    );
    for spec in &specs {
        if let Some(dir) = &args.emit_mlir {
            let case = kernel_verify::inputs::make_case(spec, args.seed)
                .map_err(|e| anyhow::anyhow!("{}: {e}", spec.origin()))?;
            let text = kernel_verify::reference::render(spec, &case)
                .map_err(|e| anyhow::anyhow!("{}: {e}", spec.origin()))?;
            std::fs::write(dir.join(format!("{}.mlir", spec.name)), text)?;
        }
        match verifier.verify(spec) {
            Ok(r) => {
                let c = &r.comparison;
                let ref_s = if r.reference_cached {
                    "shared".to_string()
                } else {
                    format!(
                        "{:.2}",
                        (r.jit.parse_verify + r.jit.lower + r.jit.compile + r.jit.run)
                            .as_secs_f64()
                    )
                };
                println!(
                    "{:<30} {:>10.3e} {:>10.3e} {:>9} {:>9.2}  {}",
                    r.name,
                    c.max_abs_err,
                    c.max_rel_err,
                    ref_s,
                    r.total.as_secs_f64(),
                    if r.passed() { "PASS" } else { "FAIL" }
                );
                if r.cpu_unstored > 0 {
                    println!(
                        "    note: {} of {} CPU output values were not rounded as the kernel stores its output ({:?}); rounded before comparing",
                        r.cpu_unstored, c.len, r.tolerance.quantum
                    );
                }
                if r.passed() {
                    passed += 1;
                } else {
                    failed += 1;
                    print_failure(spec, c, "cpu", "");
                }
            }
            Err(e) => {
                failed += 1;
                println!(
                    "{:<30} {:>10} {:>10} {:>9} {:>9}  FAIL",
                    spec.name, "-", "-", "-", "-"
                );
                println!("    {e}");
            }
        }
    }
    println!(
        "MLIR reference: {passed} passed, {failed} failed ({:.1} s)",
        start.elapsed().as_secs_f64()
    );

    // Every rendered design run in the dataflow emulator, its inputs packed and its output
    // unpacked by the runtime's host packing, compared with the same reference.
    let emu_start = Instant::now();
    let (mut emu_passed, mut emu_failed) = (0usize, 0usize);
    println!(
        "\n{:<30} {:>10} {:>10} {:>7} {:>9}  emulated design vs MLIR reference",
        "entry", "max_abs", "max_rel", "exact", "total_s"
    );
    for spec in &specs {
        match verifier.verify_emulated(spec, &args.templates) {
            Ok(r) => {
                let c = &r.comparison;
                let exact = 100.0 * c.exact as f64 / c.len.max(1) as f64;
                // Where the NPU's numerics are defined exactly (bf16 products summed in k
                // order, one rounding; no exp, no split planes), the design must match bit
                // for bit.
                let must_be_exact = exactly_defined(spec);
                let ok = r.passed() && (!must_be_exact || c.exact == c.len);
                println!(
                    "{:<30} {:>10.3e} {:>10.3e} {:>6.1}% {:>9.2}  {}",
                    r.name,
                    c.max_abs_err,
                    c.max_rel_err,
                    exact,
                    r.total.as_secs_f64(),
                    if ok { "PASS" } else { "FAIL" }
                );
                if ok {
                    emu_passed += 1;
                } else {
                    emu_failed += 1;
                    let why = if must_be_exact {
                        "not bit-exact where the numerics are defined exactly"
                    } else {
                        ""
                    };
                    print_failure(spec, c, "emulated", why);
                }
            }
            Err(e) => {
                emu_failed += 1;
                println!(
                    "{:<30} {:>10} {:>10} {:>7} {:>9}  FAIL",
                    spec.name, "-", "-", "-", "-"
                );
                println!("    {e}");
            }
        }
    }
    println!(
        "emulated designs: {emu_passed} passed, {emu_failed} failed ({:.1} s)",
        emu_start.elapsed().as_secs_f64()
    );

    // The rendered MLIR-AIE designs through aiecc's pre-compilation passes.
    let mut aie_failed = 0usize;
    match find_aie_opt() {
        AieOpt::Missing(why) => {
            println!("aie-opt check skipped: {why}");
        }
        AieOpt::Found(aie_opt) => {
            println!("aie-opt check with {}", aie_opt.display());
            let mut aie_passed = 0usize;
            for spec in &specs {
                let rendered = kernel_spec::render(spec, &args.templates)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let designs: Vec<_> = rendered
                    .files
                    .iter()
                    .filter(|(n, _)| n.ends_with(".mlir"))
                    .collect();
                if designs.is_empty() {
                    anyhow::bail!("{}: rendering produced no .mlir design", spec.origin());
                }
                for (file, text) in designs {
                    let dir = tempfile::Builder::new()
                        .prefix(&format!("aie-{}-", spec.name))
                        .tempdir()?;
                    match check_design(&aie_opt, text, core_target(spec.device), dir.path()) {
                        Ok(()) => {
                            aie_passed += 1;
                            println!("{:<28} {file:<20} aie-opt PASS", spec.name);
                        }
                        Err(e) => {
                            aie_failed += 1;
                            // Keep the failing stage's input for inspection.
                            let kept = dir.keep();
                            println!(
                                "{:<28} {file:<20} aie-opt FAIL ({})\n    {}: {e}",
                                spec.name,
                                kept.display(),
                                spec.origin()
                            );
                        }
                    }
                }
            }
            println!("aie-opt: {aie_passed} passed, {aie_failed} failed");
        }
    }
    Ok(failed == 0 && emu_failed == 0 && aie_failed == 0)
}

/// The detail line of a failed comparison: why, and the worst element (`label`: which side).
fn print_failure(
    spec: &kernel_spec::KernelSpec,
    c: &kernel_verify::Comparison,
    label: &str,
    why: &str,
) {
    let (i, got, rf) = c.worst.unwrap_or((0, f32::NAN, f32::NAN));
    println!(
        "    {}: {}; worst element {i}: {label} {got:e}, reference {rf:e} (rms {:.3e}, {} rounding flips)",
        spec.origin(),
        c.reason.as_deref().unwrap_or(why),
        c.rms,
        c.flips
    );
}

/// Entries whose NPU numerics are defined exactly: bf16 products (exact in f32) summed in k
/// order into a zeroed f32 accumulator, bias added, one rounding — no exp, no split planes.
fn exactly_defined(spec: &kernel_spec::KernelSpec) -> bool {
    use kernel_spec::{Dtype, Op};
    spec.dtype == Dtype::Bf16
        && !spec.op.split_weights()
        && !spec.op.needs_exp()
        && matches!(spec.op, Op::Matmul { .. } | Op::LmHead { .. })
}
