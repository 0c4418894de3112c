//! Attention at Whisper's shapes on the CPU backend: encoder self-attention (1500 × 1500, base's
//! 8 heads and tiny's 6 of 64) in GFLOP/s, decoder cross-attention (1–5 beams over 1500 encoder
//! frames, K/V as f32 and as f16) in GB/s of keys and values read, decoder self-attention (one
//! token over its cache). Run with
//! `cargo bench -p npu-runtime --bench attention -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use npu_runtime::{AttentionParams, BackendKind, ComputeType, Runtime, RuntimeConfig};

fn values(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
        })
        .collect()
}

/// The fastest of `runs` (the machine may be shared: the minimum is the least disturbed).
fn time_min(mut f: impl FnMut(), runs: usize) -> Duration {
    f();
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .expect("runs > 0")
}

/// Nanoseconds this process's threads have spent on a CPU (Linux), summed over its threads: on
/// a shared machine, time others' processes take is not counted.
fn cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// CPU time per call of `f` on a one-thread runtime, over at least half a second.
fn cpu_time_per_call(mut f: impl FnMut()) -> Option<f64> {
    f();
    let (t, c) = (Instant::now(), cpu_ns()?);
    let mut calls = 0;
    while calls < 3 || t.elapsed() < Duration::from_millis(500) {
        f();
        calls += 1;
    }
    Some((cpu_ns()? - c) as f64 * 1e-9 / calls as f64)
}

fn runtime(compute: ComputeType) -> Runtime {
    runtime_with(compute, 0)
}

fn runtime_with(compute: ComputeType, threads: usize) -> Runtime {
    let cfg = RuntimeConfig {
        backend: BackendKind::Cpu,
        compute,
        threads,
        ..RuntimeConfig::default()
    };
    Runtime::new(cfg).expect("runtime")
}

const D: usize = 64;
const AUDIO: usize = 1500;

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut summary = Vec::new();
    let rt = runtime(ComputeType::F32);
    println!("threads: {}", rt.threads());

    let mut g = c.benchmark_group("attention_encoder");
    for heads in [8, 6] {
        let hd = heads * D;
        let (q, k, v) = (
            values(1, AUDIO * hd),
            values(2, AUDIO * hd),
            values(3, AUDIO * hd),
        );
        let mut out = vec![0.0; AUDIO * hd];
        let p = AttentionParams {
            heads,
            head_dim: D,
            q_len: AUDIO,
            kv_len: AUDIO,
            causal_offset: None,
        };
        let flops = 4.0 * (AUDIO * AUDIO * hd) as f64;
        let mut run = || {
            rt.attention("enc", black_box(&q), &k, &v, p, &mut out)
                .unwrap()
        };
        g.throughput(Throughput::Elements(flops as u64));
        g.bench_function(format!("{heads}x{D}_1500x1500"), |b| b.iter(&mut run));
        let t = time_min(&mut run, 7).as_secs_f64();
        let one = runtime_with(ComputeType::F32, 1);
        let cpu = cpu_time_per_call(|| {
            one.attention("enc", black_box(&q), &k, &v, p, &mut out)
                .unwrap()
        });
        summary.push(format!(
            "encoder {heads}×{D} 1500×1500: {:8.3} ms  {:6.1} GFLOP/s; one thread: {}",
            t * 1e3,
            flops / t / 1e9,
            cpu.map_or("n/a".into(), |c| format!(
                "{:.1} CPU-ms, {:.1} GFLOP/s per CPU-s",
                c * 1e3,
                flops / c / 1e9
            ))
        ));
    }
    g.finish();

    let mut g = c.benchmark_group("attention_decoder");
    let heads = 8;
    let hd = heads * D;
    let (k, v) = (values(2, AUDIO * hd), values(3, AUDIO * hd));
    for compute in ComputeType::ALL {
        let rt = runtime(compute);
        let (kt, vt) = (rt.kv_tensor(k.clone(), hd), rt.kv_tensor(v.clone(), hd));
        let bytes = if kt.is_f16() { 2 } else { 4 } * 2 * AUDIO * hd;
        for beams in [1, 5] {
            let q = values(4, beams * hd);
            let mut out = vec![0.0; beams * hd];
            let p = AttentionParams {
                heads,
                head_dim: D,
                q_len: beams,
                kv_len: AUDIO,
                causal_offset: None,
            };
            let mut run = || {
                rt.attention_kv("cross", black_box(&q), &kt, &vt, p, &mut out)
                    .unwrap()
            };
            g.throughput(Throughput::Bytes(bytes as u64));
            g.bench_function(format!("cross_{compute}_{beams}q_1500"), |b| {
                b.iter(&mut run)
            });
            let t = time_min(&mut run, 51).as_secs_f64();
            let one = runtime_with(compute, 1);
            let cpu = cpu_time_per_call(|| {
                one.attention_kv("cross", black_box(&q), &kt, &vt, p, &mut out)
                    .unwrap()
            });
            summary.push(format!(
                "cross {compute} {beams} queries × 1500 keys: {:7.4} ms  {:5.1} GB/s of K/V; one thread: {}",
                t * 1e3,
                bytes as f64 / t / 1e9,
                cpu.map_or("n/a".into(), |c| format!("{:.4} CPU-ms", c * 1e3))
            ));
        }
    }
    let kv_len = 100;
    let (q, k, v) = (values(5, hd), values(6, 448 * hd), values(7, 448 * hd));
    let mut out = vec![0.0; hd];
    let p = AttentionParams {
        heads,
        head_dim: D,
        q_len: 1,
        kv_len,
        causal_offset: Some(kv_len - 1),
    };
    let mut run = || {
        rt.attention("self", black_box(&q), &k, &v, p, &mut out)
            .unwrap()
    };
    g.bench_function("self_1q_100", |b| b.iter(&mut run));
    let t = time_min(&mut run, 101).as_secs_f64();
    summary.push(format!("self 1 query × 100 keys: {:7.4} ms", t * 1e3));
    g.finish();

    println!("\nattention, CPU backend:");
    for s in summary {
        println!("  {s}");
    }
}
