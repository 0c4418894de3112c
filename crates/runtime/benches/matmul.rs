//! GFLOP/s of the CPU backend: matmul 1500×512×2048 (+bias+GELU) and one Whisper-base encoder
//! layer, next to the machine's peak. Run with
//! `cargo bench -p npu-runtime --bench matmul -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use npu_runtime::{
    AttentionParams, BackendKind, Epilogue, Linear, Numerics, Runtime, RuntimeConfig,
};

fn values(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

/// Peak f32 FLOP/s by the usual formula: cores × FMA pipes × SIMD lanes × 2 × clock.
struct Peak {
    cores: usize,
    /// 256-bit FMA units per core (see `fma_pipes_per_core`).
    fma_pipes: usize,
    lanes: usize,
    simd: &'static str,
    ghz: f64,
    clock_source: &'static str,
}

impl Peak {
    fn detect() -> Peak {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        #[cfg(target_arch = "x86_64")]
        let (lanes, simd) = if std::arch::is_x86_feature_detected!("avx512f") {
            (16, "AVX-512")
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            (8, "AVX2+FMA")
        } else {
            (4, "SSE")
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (lanes, simd) = (4, "128-bit SIMD");
        let from_cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
            let mhz: Vec<f64> = t
                .lines()
                .filter(|l| l.starts_with("cpu MHz"))
                .filter_map(|l| l.split(':').nth(1)?.trim().parse().ok())
                .collect();
            mhz.iter()
                .cloned()
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        });
        let measured = measure_clock_ghz();
        println!(
            "clock: /proc/cpuinfo {} MHz, measured {:.0} MHz",
            from_cpuinfo.map_or("n/a".to_string(), |m| format!("{m:.0}")),
            measured * 1000.0
        );
        let (ghz, clock_source) = match from_cpuinfo {
            Some(mhz) if mhz / 1000.0 >= measured || measured.is_nan() => {
                (mhz / 1000.0, "/proc/cpuinfo")
            }
            _ => (
                measured,
                "measured: dependent-add chain, above /proc/cpuinfo's nominal MHz",
            ),
        };
        let fma_pipes = fma_pipes_per_core(lanes);
        Peak {
            cores,
            fma_pipes,
            lanes,
            simd,
            ghz,
            clock_source,
        }
    }

    fn gflops(&self) -> f64 {
        self.cores as f64 * self.fma_pipes as f64 * self.lanes as f64 * 2.0 * self.ghz
    }
}

/// FMA units per core at the SIMD width used: 2 on AVX2+FMA cores since Intel Haswell and AMD
/// Zen 2 (Zen and Zen+, AMD family 0x17 below model 0x30, split 256-bit FMAs into two 128-bit
/// halves: 1); 1 for anything else.
fn fma_pipes_per_core(lanes: usize) -> usize {
    if lanes != 8 {
        return 1;
    }
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| -> Option<u32> {
        let line = info.lines().find(|l| l.starts_with(name))?;
        line.split(':').nth(1)?.trim().parse().ok()
    };
    let amd = info.contains("AuthenticAMD");
    match (amd, field("cpu family"), field("model")) {
        (true, Some(0x17), Some(model)) if model < 0x30 => 1,
        _ => 2,
    }
}

/// Clock from a chain of dependent integer adds (one per cycle on every x86 core), which sees
/// turbo clocks that /proc/cpuinfo's nominal "cpu MHz" (especially in VMs) does not.
fn measure_clock_ghz() -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        let iters: u64 = 5_000_000;
        let run = || {
            let (mut x, mut n) = (0u64, iters);
            let t = Instant::now();
            // SAFETY: pure register arithmetic.
            unsafe {
                std::arch::asm!(
                    "2:",
                    ".rept 200",
                    "add {x}, 1",
                    ".endr",
                    "dec {n}",
                    "jnz 2b",
                    x = inout(reg) x,
                    n = inout(reg) n,
                    options(nomem, nostack),
                );
            }
            black_box((x, n));
            (iters * 200) as f64 / t.elapsed().as_secs_f64() / 1e9
        };
        (0..5).map(|_| run()).fold(0.0, f64::max)
    }
    #[cfg(not(target_arch = "x86_64"))]
    f64::NAN
}

/// FMA throughput actually available now (every core running independent FMA chains), the
/// fair denominator on a shared machine.
fn measured_peak_gflops(cores: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn chains(iters: usize) -> f32 {
                use std::arch::x86_64::*;
                let mut acc = [_mm256_setzero_ps(); 12];
                let a = _mm256_set1_ps(0.999_999);
                let b = _mm256_set1_ps(1e-7);
                for _ in 0..iters {
                    for v in acc.iter_mut() {
                        *v = _mm256_fmadd_ps(*v, a, b);
                    }
                }
                let mut out = [0f32; 8];
                _mm256_storeu_ps(
                    out.as_mut_ptr(),
                    acc.iter()
                        .fold(_mm256_setzero_ps(), |s, v| _mm256_add_ps(s, *v)),
                );
                out.iter().sum()
            }
            let iters = 20_000_000;
            let t = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..cores {
                    // SAFETY: avx2 and fma were detected above.
                    s.spawn(|| black_box(unsafe { chains(iters) }));
                }
            });
            return (cores * iters * 12 * 8 * 2) as f64 / t.elapsed().as_secs_f64() / 1e9;
        }
    }
    f64::NAN
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

struct Layer {
    ln1: (Vec<f32>, Vec<f32>),
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ln2: (Vec<f32>, Vec<f32>),
    fc1: Linear,
    fc2: Linear,
}

struct Buffers {
    x: Vec<f32>,
    ln: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    h: Vec<f32>,
    y: Vec<f32>,
}

const T: usize = 1500;
const D: usize = 512;
const H: usize = 8;
const DFF: usize = 2048;

impl Layer {
    fn new(rt: &Runtime) -> Layer {
        let lin = |seed, i, o| rt.linear(values(seed, i * o), Some(values(seed + 1, o)), i, o);
        Layer {
            ln1: (vec![1.0; D], vec![0.0; D]),
            q: lin(10, D, D),
            k: lin(12, D, D),
            v: lin(14, D, D),
            out: lin(16, D, D),
            ln2: (vec![1.0; D], vec![0.0; D]),
            fc1: lin(18, D, DFF),
            fc2: lin(20, DFF, D),
        }
    }

    fn flops() -> f64 {
        let proj = 4.0 * 2.0 * (T * D * D) as f64;
        let attn = 4.0 * (T * T * D) as f64;
        let ffn = 4.0 * (T * D * DFF) as f64;
        proj + attn + ffn
    }

    /// Pre-LN encoder block: x + out(attn(ln1 x)), then + fc2(gelu(fc1(ln2 x))).
    fn run(&self, rt: &Runtime, b: &mut Buffers) {
        let none = Epilogue::default();
        rt.layernorm("ln1", &b.x, T, D, &self.ln1.0, &self.ln1.1, 1e-5, &mut b.ln)
            .unwrap();
        rt.matmul("q", &b.ln, T, &self.q, none, &mut b.q).unwrap();
        rt.matmul("k", &b.ln, T, &self.k, none, &mut b.k).unwrap();
        rt.matmul("v", &b.ln, T, &self.v, none, &mut b.v).unwrap();
        let p = AttentionParams {
            heads: H,
            head_dim: D / H,
            q_len: T,
            kv_len: T,
            causal_offset: None,
        };
        rt.attention("attn", &b.q, &b.k, &b.v, p, &mut b.attn)
            .unwrap();
        rt.matmul(
            "out",
            &b.attn,
            T,
            &self.out,
            Epilogue {
                gelu: false,
                residual: Some(&b.x),
            },
            &mut b.h,
        )
        .unwrap();
        rt.layernorm("ln2", &b.h, T, D, &self.ln2.0, &self.ln2.1, 1e-5, &mut b.ln)
            .unwrap();
        rt.ffn("ffn", &b.ln, T, &self.fc1, &self.fc2, &b.h, &mut b.y)
            .unwrap();
    }
}

fn main() {
    let peak = Peak::detect();
    let mut c = Criterion::default().configure_from_args();
    let mut summary = Vec::new();
    let mut peer_t = None;
    for numerics in [Numerics::F32, Numerics::Npu] {
        let cfg = RuntimeConfig {
            backend: BackendKind::Cpu,
            numerics,
            ..RuntimeConfig::default()
        };
        let rt = Runtime::with_kernels(cfg, vec![]).expect("runtime");
        let tag = format!("{numerics:?}").to_lowercase();

        let (m, k, n) = (1500, 512, 2048);
        let x = values(1, m * k);
        let lin = rt.linear(values(2, n * k), Some(values(3, n)), k, n);
        let mut out = vec![0.0; m * n];
        let mm_flops = 2.0 * (m * k * n) as f64;
        let mut mm = || {
            rt.matmul(
                "mm",
                black_box(&x),
                m,
                &lin,
                Epilogue {
                    gelu: true,
                    residual: None,
                },
                &mut out,
            )
            .unwrap()
        };
        let mut g = c.benchmark_group(format!("cpu_{tag}"));
        g.throughput(Throughput::Elements(mm_flops as u64));
        g.bench_function("matmul_1500x512x2048_bias_gelu", |b| b.iter(&mut mm));
        let mm_t = time_median(&mut mm, 9);
        if numerics == Numerics::F32 {
            // The named peer: the gemm crate on the whole matrix with its own rayon split, no
            // epilogue (what the runtime's tiles + fused epilogue must not fall behind).
            let w = values(2, n * k);
            let mut peer = || unsafe {
                // SAFETY: all three matrices have exactly the extents passed.
                gemm::gemm(
                    m,
                    n,
                    k,
                    out.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    w.as_ptr(),
                    k as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(0),
                );
            };
            g.bench_function("peer_gemm_crate_1500x512x2048_no_epilogue", |b| {
                b.iter(&mut peer)
            });
            peer_t = Some(time_median(&mut peer, 9));
        }

        let layer = Layer::new(&rt);
        let mut bufs = Buffers {
            x: values(4, T * D),
            ln: vec![0.0; T * D],
            q: vec![0.0; T * D],
            k: vec![0.0; T * D],
            v: vec![0.0; T * D],
            attn: vec![0.0; T * D],
            h: vec![0.0; T * D],
            y: vec![0.0; T * D],
        };
        g.throughput(Throughput::Elements(Layer::flops() as u64));
        g.bench_function("whisper_base_encoder_layer", |b| {
            b.iter(|| layer.run(&rt, &mut bufs))
        });
        g.finish();
        let layer_t = time_median(|| layer.run(&rt, &mut bufs), 5);
        summary.push((
            tag.clone(),
            "matmul 1500x512x2048 +bias+GELU",
            mm_flops,
            mm_t,
        ));
        summary.push((
            tag,
            "encoder layer (base, 1500 frames)",
            Layer::flops(),
            layer_t,
        ));
    }

    // Decoder-sized calls (5 beams): where latency, not throughput, matters.
    {
        let rt = Runtime::with_kernels(
            RuntimeConfig {
                backend: BackendKind::Cpu,
                ..RuntimeConfig::default()
            },
            vec![],
        )
        .expect("runtime");
        let mut g = c.benchmark_group("cpu_f32_decode");
        let (rows, d, dff, vocab) = (5, 512, 2048, 51865);
        let x = values(1, rows * d);
        let fc1 = rt.linear(values(2, dff * d), Some(values(3, dff)), d, dff);
        let mut h = vec![0.0; rows * dff];
        g.throughput(Throughput::Elements((2 * rows * d * dff) as u64));
        g.bench_function("matmul_5x512x2048", |b| {
            b.iter(|| {
                rt.matmul(
                    "fc1",
                    &x,
                    rows,
                    &fc1,
                    Epilogue {
                        gelu: true,
                        residual: None,
                    },
                    &mut h,
                )
                .unwrap()
            })
        });
        let emb = rt.linear(values(4, vocab * d), None, d, vocab);
        let mut logits = vec![0.0; rows * vocab];
        g.throughput(Throughput::Elements((2 * rows * d * vocab) as u64));
        g.bench_function("lm_head_5x512x51865", |b| {
            b.iter(|| rt.lm_head("lm", &x, rows, &emb, None, &mut logits).unwrap())
        });
        // Whisper's weights are float16 values: these take the f16 few-row kernel.
        let f16 = |v: Vec<f32>| -> Vec<f32> {
            v.into_iter()
                .map(|w| half::f16::from_f32(w).to_f32())
                .collect()
        };
        let fc1_f16 = rt.linear(f16(values(2, dff * d)), Some(values(3, dff)), d, dff);
        let emb_f16 = rt.linear(f16(values(4, vocab * d)), None, d, vocab);
        for r in [1, rows] {
            g.throughput(Throughput::Elements((2 * r * d * dff) as u64));
            g.bench_function(format!("f16_weights_matmul_{r}x512x2048"), |b| {
                b.iter(|| {
                    rt.matmul(
                        "fc1",
                        &x[..r * d],
                        r,
                        &fc1_f16,
                        Epilogue::default(),
                        &mut h[..r * dff],
                    )
                    .unwrap()
                })
            });
            g.throughput(Throughput::Elements((2 * r * d * vocab) as u64));
            g.bench_function(format!("f16_weights_lm_head_{r}x512x51865"), |b| {
                b.iter(|| {
                    rt.lm_head(
                        "lm",
                        &x[..r * d],
                        r,
                        &emb_f16,
                        None,
                        &mut logits[..r * vocab],
                    )
                    .unwrap()
                })
            });
        }
        let kv = values(5, 1500 * d);
        let mut o = vec![0.0; rows * d];
        let p = AttentionParams {
            heads: H,
            head_dim: d / H,
            q_len: rows,
            kv_len: 1500,
            causal_offset: None,
        };
        g.throughput(Throughput::Elements((4 * rows * 1500 * d) as u64));
        g.bench_function("cross_attention_5x1500", |b| {
            b.iter(|| rt.attention("cross", &x, &kv, &kv, p, &mut o).unwrap())
        });
        let p = AttentionParams {
            heads: H,
            head_dim: d / H,
            q_len: 1,
            kv_len: 224,
            causal_offset: Some(223),
        };
        g.throughput(Throughput::Elements((4 * 224 * d) as u64));
        g.bench_function("self_attention_1x224_causal", |b| {
            b.iter(|| {
                rt.attention("self", &x[..d], &kv, &kv, p, &mut o[..d])
                    .unwrap()
            })
        });
        g.finish();
    }
    c.final_summary();

    // Where the encoder layer's time goes (f32, 3 runs).
    let cfg = RuntimeConfig {
        backend: BackendKind::Cpu,
        profile: true,
        ..RuntimeConfig::default()
    };
    let rt = Runtime::with_kernels(cfg, vec![]).expect("runtime");
    let layer = Layer::new(&rt);
    let mut bufs = Buffers {
        x: values(4, T * D),
        ln: vec![0.0; T * D],
        q: vec![0.0; T * D],
        k: vec![0.0; T * D],
        v: vec![0.0; T * D],
        attn: vec![0.0; T * D],
        h: vec![0.0; T * D],
        y: vec![0.0; T * D],
    };
    layer.run(&rt, &mut bufs);
    rt.reset_profile();
    for _ in 0..3 {
        layer.run(&rt, &mut bufs);
    }
    println!(
        "\nencoder layer breakdown (f32, 3 runs):\n{}",
        rt.profile_report()
    );

    println!();
    println!(
        "peak: {} cores x {} FMA pipes x {} f32 lanes ({}) x 2 (FMA) x {:.3} GHz ({}) = {:.1} GFLOP/s",
        peak.cores,
        peak.fma_pipes,
        peak.lanes,
        peak.simd,
        peak.ghz,
        peak.clock_source,
        peak.gflops()
    );
    let now = measured_peak_gflops(peak.cores);
    println!("measured FMA throughput now (machine shared with other jobs): {now:.1} GFLOP/s");
    if let Some(t) = peer_t {
        summary.insert(
            1,
            (
                "peer".to_string(),
                "gemm crate 1500x512x2048, no epilogue",
                2.0 * (1500 * 512 * 2048) as f64,
                t,
            ),
        );
    }
    for (tag, what, flops, t) in summary {
        let gf = flops / t.as_secs_f64() / 1e9;
        println!(
            "{tag:>4} {what:<38} {:>8.2} ms  {gf:>7.1} GFLOP/s  {:>5.1} % of peak  {:>5.1} % of measured FMA throughput",
            t.as_secs_f64() * 1e3,
            100.0 * gf / peak.gflops(),
            100.0 * gf / now
        );
    }
}
