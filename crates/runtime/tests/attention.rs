//! The f32 attention paths (few queries: blocked over keys; many: blocked over queries and keys)
//! against an f64 reference, f16 key/value storage, and the invariances decoding relies on: a
//! row's result depends neither on the other rows of the call nor on the thread count.

mod common;

use common::*;
use npu_runtime::{
    AttentionParams, BackendKind, ComputeType, KvTensor, Numerics, Runtime, RuntimeConfig,
};
use proptest::prelude::*;

fn cfg() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    ProptestConfig::with_cases(cases)
}

fn cpu(compute: ComputeType, threads: usize) -> Runtime {
    let cfg = RuntimeConfig {
        backend: BackendKind::Cpu,
        numerics: Numerics::F32,
        threads,
        compute,
        ..RuntimeConfig::default()
    };
    Runtime::new(cfg).expect("runtime")
}

/// Head sizes of the vectorised kernels (multiples of 8, Whisper's 64) and odd ones.
fn head_dim() -> impl Strategy<Value = usize> {
    prop_oneof![Just(64usize), Just(8), Just(32), 1usize..70]
}

struct Case {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    p: AttentionParams,
}

fn case(
    heads: usize,
    d: usize,
    q_len: usize,
    kv_len: usize,
    off: Option<usize>,
    seed: u64,
) -> Case {
    let hd = heads * d;
    // Scores of a few units, as in a model: softmax far from uniform.
    let q = values(seed, q_len * hd).iter().map(|v| v * 3.0).collect();
    let k = values(seed + 1, kv_len * hd)
        .iter()
        .map(|v| v * 3.0)
        .collect();
    // Rows past kv_len must be ignored.
    let v = values(seed + 2, (kv_len + 3) * hd);
    let p = AttentionParams {
        heads,
        head_dim: d,
        q_len,
        kv_len,
        causal_offset: off,
    };
    Case { q, k, v, p }
}

fn reference(c: &Case) -> Vec<f64> {
    let p = &c.p;
    attention_f64(
        &c.q,
        &c.k,
        &c.v,
        p.heads,
        p.head_dim,
        p.q_len,
        p.kv_len,
        p.causal_offset,
        false,
    )
}

fn f16_rounded(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn f32_attention_matches_reference(heads in 1usize..9, d in head_dim(), q_len in 1usize..40, kv_len in 1usize..300, off in 0usize..200, causal: bool, seed: u64) {
        let rt = cpu(ComputeType::F32, 2);
        let c = case(heads, d, q_len, kv_len, causal.then_some(off), seed);
        let mut out = vec![f32::NAN; q_len * heads * d];
        rt.attention("t", &c.q, &c.k, &c.v, c.p, &mut out).unwrap();
        assert_close("attention", &out, &reference(&c), |_| 2e-5);
    }

    /// int8 compute keeps keys and values as f16; the arithmetic stays f32.
    #[test]
    fn f16_keys_and_values_match_the_reference_on_their_values(heads in 1usize..9, d in head_dim(), q_len in 1usize..12, kv_len in 1usize..300, off in 0usize..200, causal: bool, seed: u64) {
        let rt = cpu(ComputeType::Int8, 2);
        let mut c = case(heads, d, q_len, kv_len, causal.then_some(off), seed);
        let k = rt.kv_tensor(c.k.clone(), heads * d);
        let v = rt.kv_tensor(c.v.clone(), heads * d);
        prop_assert!(k.is_f16() && v.is_f16());
        let mut out = vec![f32::NAN; q_len * heads * d];
        rt.attention_kv("t", &c.q, &k, &v, c.p, &mut out).unwrap();
        c.k = f16_rounded(&c.k);
        c.v = f16_rounded(&c.v);
        assert_close("attention over f16", &out, &reference(&c), |_| 2e-5);
    }
}

#[test]
fn f32_compute_keeps_keys_and_values_f32() {
    let rt = cpu(ComputeType::F32, 1);
    let x = values(9, 6 * 8);
    let t = rt.kv_tensor(x.clone(), 8);
    assert!(!t.is_f16());
    assert_eq!(&*t.to_f32(), &x[..]);
    // Same numbers through both entry points.
    let c = case(2, 4, 3, 6, None, 4);
    let (k, v) = (
        KvTensor::f32(c.k.clone(), 8),
        KvTensor::f32(c.v[..48].to_vec(), 8),
    );
    let (mut a, mut b) = (vec![0.0; 24], vec![0.0; 24]);
    rt.attention("t", &c.q, &c.k, &c.v, c.p, &mut a).unwrap();
    rt.attention_kv("t", &c.q, &k, &v, c.p, &mut b).unwrap();
    assert_eq!(a, b);
}

#[test]
fn mixed_storage_is_an_error() {
    let rt = cpu(ComputeType::F32, 1);
    let x = values(1, 16);
    let (k, v) = (KvTensor::f32(x.clone(), 8), KvTensor::f16(&x, 8));
    let p = AttentionParams {
        heads: 1,
        head_dim: 8,
        q_len: 1,
        kv_len: 2,
        causal_offset: None,
    };
    let err = rt.attention_kv("x.cross", &x[..8], &k, &v, p, &mut [0.0; 8]);
    assert!(err.unwrap_err().to_string().contains("x.cross"));
}

/// Beams decoded together or alone, on one thread or two, get the same bits: the decoding
/// path's key blocks depend only on the key count.
#[test]
fn few_query_rows_do_not_depend_on_the_batch_or_the_threads() {
    for (d, kv_len, off) in [(64, 1500, None), (64, 300, Some(290)), (24, 200, None)] {
        let c = case(8, d, 5, kv_len, off, 77);
        let hd = 8 * d;
        for compute in ComputeType::ALL {
            let (rt1, rt2) = (cpu(compute, 1), cpu(compute, 2));
            let (k, v) = (
                rt2.kv_tensor(c.k.clone(), hd),
                rt2.kv_tensor(c.v.clone(), hd),
            );
            let mut all = vec![0.0; 5 * hd];
            rt2.attention_kv("t", &c.q, &k, &v, c.p, &mut all).unwrap();
            let mut one_thread = vec![0.0; 5 * hd];
            rt1.attention_kv("t", &c.q, &k, &v, c.p, &mut one_thread)
                .unwrap();
            assert_eq!(all, one_thread, "d {d} kv {kv_len} {compute}: threads");
            for i in 0..5 {
                let p = AttentionParams {
                    q_len: 1,
                    causal_offset: off.map(|o| o + i),
                    ..c.p
                };
                let mut row = vec![0.0; hd];
                rt2.attention_kv("t", &c.q[i * hd..(i + 1) * hd], &k, &v, p, &mut row)
                    .unwrap();
                assert_eq!(
                    row,
                    all[i * hd..(i + 1) * hd],
                    "d {d} kv {kv_len} {compute}: row {i}"
                );
            }
        }
    }
}

/// Sequences of different lengths in one batched call: each gets the bits it gets alone.
#[test]
fn a_batched_call_gives_each_sequence_its_own_result() {
    use npu_runtime::SeqKv;
    let (heads, d) = (4, 64);
    let hd = heads * d;
    for q_len in [1, 3, 12] {
        let rt = cpu(ComputeType::F32, 2);
        let lens = [5usize, 140, 64, 1];
        let kvs: Vec<(Vec<f32>, Vec<f32>)> = lens
            .iter()
            .enumerate()
            .map(|(b, &l)| {
                let n = (l + q_len) * hd;
                (values(10 + b as u64, n), values(20 + b as u64, n))
            })
            .collect();
        let q = values(3, lens.len() * q_len * hd);
        let seqs: Vec<SeqKv<'_>> = kvs
            .iter()
            .zip(lens)
            .map(|((k, v), l)| SeqKv {
                k,
                v,
                kv_len: l + q_len,
                causal_offset: Some(l),
            })
            .collect();
        let mut batched = vec![f32::NAN; q.len()];
        rt.attention_batch("t", &q, &seqs, heads, d, q_len, &mut batched)
            .unwrap();
        let rows = q_len * hd;
        for (b, s) in seqs.iter().enumerate() {
            let p = AttentionParams {
                heads,
                head_dim: d,
                q_len,
                kv_len: s.kv_len,
                causal_offset: s.causal_offset,
            };
            let mut alone = vec![0.0; rows];
            rt.attention("t", &q[b * rows..(b + 1) * rows], s.k, s.v, p, &mut alone)
                .unwrap();
            assert_eq!(
                alone,
                batched[b * rows..(b + 1) * rows],
                "q_len {q_len} seq {b}"
            );
        }
        let short = [SeqKv {
            k: &kvs[0].0[..hd],
            ..seqs[0]
        }];
        let err = rt.attention_batch(
            "dec.attn",
            &q[..rows],
            &short,
            heads,
            d,
            q_len,
            &mut batched,
        );
        assert!(err.unwrap_err().to_string().contains("dec.attn"));
    }
}
