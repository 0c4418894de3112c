//! GOP/s of the int8 kernels (`ComputeType::Int8`) at every instruction set this CPU has, for
//! Whisper base's decoding (1 and 5 rows) and encoder (1500 rows) shapes, beside the peak of
//! that instruction set on this machine and beside the f32 path. Run with
//! `cargo bench -p npu-runtime --bench int8 -- --warm-up-time 0.3 --measurement-time 1`.
//!
//! Ops counted: 2 per multiply-accumulate (rows × k × n of them), as for f32 FLOP/s. The peak is
//! MEASURED, not computed from a data sheet: every core runs a register-only loop of the
//! instruction sequence the kernels use per 4-byte group (independent accumulator chains, no
//! memory operands): `vpdpbusd zmm` = 64 MACs; `{vex} vpdpbusd ymm` = 32 MACs;
//! AVX2 `vpsignb + vpmaddubsw + vpmaddwd + vpaddd` = 32 MACs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use npu_runtime::int8::{matmul_with, Int8Weights, Isa};
use npu_runtime::{BackendKind, Epilogue, Runtime, RuntimeConfig};

fn values(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // f16-exact values, as a float16 checkpoint's (the f32 path then streams f16).
            let v = ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2;
            half::f16::from_f32(v).to_f32()
        })
        .collect()
}

/// Runs `body(iters)` on every core at once; returns GOP/s given `ops` per iteration.
fn on_all_cores(ops_per_iter: f64, body: fn(u64)) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let iters = 20_000_000u64;
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| body(black_box(iters)));
        }
    });
    cores as f64 * iters as f64 * ops_per_iter / t.elapsed().as_secs_f64() / 1e9
}

/// The measured peak GOP/s of `isa`'s instruction sequence (None: no such loop, scalar).
fn peak(isa: Isa) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::asm;
        #[target_feature(enable = "avx512f,avx512vnni")]
        unsafe fn zmm(iters: u64) {
            asm!("2:",
                "vpdpbusd zmm0, zmm30, zmm31", "vpdpbusd zmm1, zmm30, zmm31",
                "vpdpbusd zmm2, zmm30, zmm31", "vpdpbusd zmm3, zmm30, zmm31",
                "vpdpbusd zmm4, zmm30, zmm31", "vpdpbusd zmm5, zmm30, zmm31",
                "vpdpbusd zmm6, zmm30, zmm31", "vpdpbusd zmm7, zmm30, zmm31",
                "vpdpbusd zmm8, zmm30, zmm31", "vpdpbusd zmm9, zmm30, zmm31",
                "vpdpbusd zmm10, zmm30, zmm31", "vpdpbusd zmm11, zmm30, zmm31",
                "vpdpbusd zmm12, zmm30, zmm31", "vpdpbusd zmm13, zmm30, zmm31",
                "vpdpbusd zmm14, zmm30, zmm31", "vpdpbusd zmm15, zmm30, zmm31",
                "dec {n}", "jnz 2b",
                n = inout(reg) iters => _,
                out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _,
                out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _,
                out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
                out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _,
                out("zmm30") _, out("zmm31") _,
                options(nomem, nostack));
        }
        #[target_feature(enable = "avx2,avxvnni")]
        unsafe fn ymm_vnni(iters: u64) {
            asm!("2:",
                "{{vex}} vpdpbusd ymm0, ymm14, ymm15", "{{vex}} vpdpbusd ymm1, ymm14, ymm15",
                "{{vex}} vpdpbusd ymm2, ymm14, ymm15", "{{vex}} vpdpbusd ymm3, ymm14, ymm15",
                "{{vex}} vpdpbusd ymm4, ymm14, ymm15", "{{vex}} vpdpbusd ymm5, ymm14, ymm15",
                "{{vex}} vpdpbusd ymm6, ymm14, ymm15", "{{vex}} vpdpbusd ymm7, ymm14, ymm15",
                "{{vex}} vpdpbusd ymm8, ymm14, ymm15", "{{vex}} vpdpbusd ymm9, ymm14, ymm15",
                "{{vex}} vpdpbusd ymm10, ymm14, ymm15", "{{vex}} vpdpbusd ymm11, ymm14, ymm15",
                "dec {n}", "jnz 2b",
                n = inout(reg) iters => _,
                out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                out("ymm14") _, out("ymm15") _,
                options(nomem, nostack));
        }
        #[target_feature(enable = "avx2")]
        unsafe fn ymm_avx2(iters: u64) {
            macro_rules! step {
                ($acc:literal, $t:literal) => {
                    concat!(
                        "vpsignb ymm",
                        $t,
                        ", ymm13, ymm14\n",
                        "vpmaddubsw ymm",
                        $t,
                        ", ymm12, ymm",
                        $t,
                        "\n",
                        "vpmaddwd ymm",
                        $t,
                        ", ymm",
                        $t,
                        ", ymm15\n",
                        "vpaddd ymm",
                        $acc,
                        ", ymm",
                        $acc,
                        ", ymm",
                        $t,
                        "\n"
                    )
                };
            }
            asm!("2:",
                step!("0", "6"), step!("1", "7"), step!("2", "8"),
                step!("3", "9"), step!("4", "10"), step!("5", "11"),
                "dec {n}", "jnz 2b",
                n = inout(reg) iters => _,
                out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                options(nomem, nostack));
        }
        // SAFETY (all three): register-only loops, run only where `isa.available()`.
        return match isa {
            Isa::Avx512Vnni => Some(on_all_cores(16.0 * 128.0, |n| unsafe { zmm(n) })),
            Isa::AvxVnni => Some(on_all_cores(12.0 * 64.0, |n| unsafe { ymm_vnni(n) })),
            Isa::Avx2 => Some(on_all_cores(6.0 * 64.0, |n| unsafe { ymm_avx2(n) })),
            Isa::Scalar => None,
        };
    }
    #[allow(unreachable_code)]
    None
}

fn time_median(mut f: impl FnMut(), runs: usize) -> Duration {
    f();
    let mut ts: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    ts.sort();
    ts[runs / 2]
}

/// (label, rows, k, n): Whisper base's decoding and encoder products.
const SHAPES: [(&str, usize, usize, usize); 10] = [
    ("dec 1x512x512", 1, 512, 512),
    ("dec 1x512x2048", 1, 512, 2048),
    ("dec 1x2048x512", 1, 2048, 512),
    ("dec 1x512x51865 (LM head)", 1, 512, 51865),
    ("dec 5x512x2048", 5, 512, 2048),
    ("dec 5x2048x512", 5, 2048, 512),
    ("dec 5x512x51865 (LM head)", 5, 512, 51865),
    ("enc 1500x512x512", 1500, 512, 512),
    ("enc 1500x512x2048", 1500, 512, 2048),
    ("enc 1500x2048x512", 1500, 2048, 512),
];

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cores)
        .build()
        .expect("pool");
    let rt = Runtime::with_kernels(
        RuntimeConfig {
            backend: BackendKind::Cpu,
            ..RuntimeConfig::default()
        },
        vec![],
    )
    .expect("runtime");
    let isas = Isa::all_available();
    let peaks: Vec<(Isa, Option<f64>)> = isas.iter().map(|&i| (i, peak(i))).collect();
    let mut rows_out = Vec::new();
    for (label, rows, k, n) in SHAPES {
        let w = values(k as u64 + n as u64, n * k);
        let bias = values(3, n);
        let x = values(rows as u64, rows * k);
        let mut out = vec![0.0; rows * n];
        let ops = 2.0 * (rows * k * n) as f64;
        let packed = pool.install(|| Int8Weights::quantize(&w, k, n));
        let mut g = c.benchmark_group(format!("int8/{label}"));
        g.throughput(Throughput::Elements(ops as u64))
            .sample_size(10);
        for &isa in &isas {
            let mut f = || {
                pool.install(|| {
                    matmul_with(isa, black_box(&x), rows, &packed, Some(&bias), &mut out)
                })
            };
            g.bench_function(isa.name(), |b| b.iter(&mut f));
            let t = time_median(&mut f, 15);
            rows_out.push((label, isa.name(), ops, packed.bytes(), t));
        }
        let lin = rt.linear(w.clone(), Some(bias.clone()), k, n);
        let mut f32_path = || {
            rt.matmul(
                "f32",
                black_box(&x),
                rows,
                &lin,
                Epilogue::default(),
                &mut out,
            )
            .unwrap()
        };
        g.bench_function("f32 path", |b| b.iter(&mut f32_path));
        g.finish();
        let t = time_median(&mut f32_path, 15);
        // The f32 path streams f16 weights for ≤ 8 rows, f32 ones otherwise.
        let bytes = if rows <= 8 { 2 * n * k } else { 4 * n * k };
        rows_out.push((label, "f32 path", ops, bytes, t));
    }
    println!("\nint8 kernels, {cores} threads (ops = 2 per multiply-accumulate)");
    println!("measured peak of each instruction set on all cores (register-only loop):");
    for (isa, p) in &peaks {
        match p {
            Some(p) => println!("  {:<12} {:>8.0} GOP/s", isa.name(), p),
            None => println!("  {:<12}      n/a (compiler-generated code)", isa.name()),
        }
    }
    println!(
        "{:<28} {:<12} {:>10} {:>9} {:>8} {:>9}",
        "shape", "kernel", "time µs", "GOP/s", "% peak", "GB/s wts"
    );
    for (label, kernel, ops, bytes, t) in rows_out {
        let s = t.as_secs_f64();
        let pk = peaks
            .iter()
            .find(|(i, _)| i.name() == kernel)
            .and_then(|(_, p)| *p);
        println!(
            "{:<28} {:<12} {:>10.1} {:>9.1} {:>8} {:>9.1}",
            label,
            kernel,
            s * 1e6,
            ops / s / 1e9,
            pk.map_or("-".to_string(), |p| format!(
                "{:.0}%",
                100.0 * ops / s / 1e9 / p
            )),
            bytes as f64 / s / 1e9
        );
    }
}
