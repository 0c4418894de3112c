//! Host packing read back through index formulas written here from the design headers
//! (templates/*/design.mlir.jinja): every element in its place, padding zero, unpacking the
//! inverse of what a design writes.

mod common;
mod support;

use common::{bf16, int8_scale, quant, values};
use npu_runtime::host::{AttentionLayout, FfnLayout, LayerNormLayout, LmHeadLayout, MatmulLayout};
use proptest::prelude::*;
use support::*;

/// A buffer of the argument's size (from the layout).
fn buf(args: &[npu_runtime::host::HostArg], name: &str) -> Vec<u8> {
    let a = args.iter().find(|a| a.name == name).expect("argument");
    vec![0xAA; a.bytes()] // not zero: packing must write the padding
}

/// `v` as the kernel reads it (`rd`), zero-padded to `len`.
fn padded(v: &[f32], len: usize, rd: impl Fn(f32) -> f32) -> Vec<f32> {
    let mut out: Vec<f32> = v.iter().map(|&x| rd(x)).collect();
    out.resize(len, 0.0);
    out
}

/// hi and lo planes as the headers define them: hi = bf16(w), lo = bf16(w − hi).
fn planes(w: f32) -> (f32, f32) {
    let hi = bf16(w);
    (hi, bf16(w - hi))
}

/// 32-bit parameter word from two bf16 elements (low half, high half).
fn word_bf16(b: &[u8], lo: usize, hi: usize) -> u32 {
    u16_at(b, lo) | (u16_at(b, hi) << 16)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// "%x: X [M, K]; %w: W^T [K, N] (two planes [2K, N]: per block of tile_k rows, hi then lo),
    /// then N/tile_n parameter tiles of tile_k x tile_n: word 0 = bias, word w in rows 2w, 2w+1";
    /// "%r: R [M, N]"; "%y: Y [M, N]".
    #[test]
    fn matmul_bf16_buffers(rows in 1usize..=40, seed: u64, split: bool, bias: bool) {
        let s = spec(if split { "t_mm_split" } else { "t_mm" });
        let lay = MatmulLayout::of(&s).unwrap();
        let (k, n, kp, np, tk, tn) = if split { (128, 64, 128, 64, 64, 32) } else { (200, 90, 224, 96, 32, 32) };
        let rows = rows.min(if split { 32 } else { 40 });
        let (x, w, b, r) = (values(seed, rows * k), values(seed ^ 1, n * k), values(seed ^ 2, n), values(seed ^ 3, rows * n));
        let bias = bias.then_some(&b[..]);

        let mut xb = buf(lay.args(), "x");
        lay.pack_x(&x, rows, &mut xb);
        for row in 0..48.min(xb.len() / 2 / kp) {
            for i in 0..kp {
                let want = if row < rows && i < k { bf16(x[row * k + i]) } else { 0.0 };
                prop_assert_eq!(bf16_at(&xb, row * kp + i), want, "x[{}, {}]", row, i);
            }
        }

        let img = lay.weights_image(&w, bias);
        prop_assert_eq!(img.bytes.len(), buf(lay.args(), "w").len());
        let nplanes = if split { 2 } else { 1 };
        for i in 0..kp {
            for c in 0..np {
                let v = if i < k && c < n { w[c * k + i] } else { 0.0 };
                if split {
                    let (hi, lo) = planes(v);
                    let hi_row = (i / tk) * 2 * tk + i % tk;
                    prop_assert_eq!(bf16_at(&img.bytes, hi_row * np + c), hi);
                    prop_assert_eq!(bf16_at(&img.bytes, (hi_row + tk) * np + c), lo);
                } else {
                    prop_assert_eq!(bf16_at(&img.bytes, i * np + c), bf16(v), "w^T[{}, {}]", i, c);
                }
            }
        }
        let params = nplanes * kp * np;
        for c in 0..np {
            let tile = params + (c / tn) * tk * tn;
            let word = word_bf16(&img.bytes, tile + c % tn, tile + tn + c % tn);
            let want = match bias { Some(b) if c < n => bf16(b[c]), _ => 0.0 };
            prop_assert_eq!(f32::from_bits(word), want, "bias word of channel {}", c);
            for row in 2..tk {
                prop_assert_eq!(u16_at(&img.bytes, tile + row * tn + c % tn), 0);
            }
        }

        if !split {
            let mut rb = buf(lay.args(), "r");
            lay.pack_residual(&r, rows, &mut rb);
            for row in 0..48 {
                for c in 0..np {
                    let want = if row < rows && c < n { bf16(r[row * n + c]) } else { 0.0 };
                    prop_assert_eq!(bf16_at(&rb, row * np + c), want);
                }
            }
        }

        // A design's Y (bf16 [M, N]) reads back without the padding.
        let mut yb = buf(lay.args(), "y");
        for (i, v) in yb.chunks_exact_mut(2).enumerate() {
            v.copy_from_slice(&((i as u16) ^ 0x3f00).to_le_bytes());
        }
        let mut out = vec![0.0; rows * n];
        lay.unpack_y(&yb, rows, 1.0, &mut out);
        for row in 0..rows {
            for c in 0..n {
                prop_assert_eq!(out[row * n + c], bf16_at(&yb, row * np + c));
            }
        }
    }

    /// int8: "%x quantised with a per-tensor scale sx"; parameter words "0 = bias (f32),
    /// 1 = sx*sw[n] (f32), 2 = 1/s_out (f32), word w in rows 4w..4w+3 (bytes), little-endian".
    #[test]
    fn matmul_int8_buffers(rows in 1usize..=30, seed: u64, per_channel: bool) {
        let s = spec(if per_channel { "t_mm_q8" } else { "t_mm_q8_bf" });
        let lay = MatmulLayout::of(&s).unwrap();
        let (k, n, tk, tn) = (256, 64, 64, 32);
        let (x, w, b) = (values(seed, rows * k), values(seed ^ 1, n * k), values(seed ^ 2, n));
        let mut xb = buf(lay.args(), "x");
        let sx = lay.pack_x_int8(&x, rows, &mut xb);
        prop_assert_eq!(sx, int8_scale(&x));
        for row in 0..32 {
            for i in 0..k {
                let want = if row < rows { quant(x[row * k + i], sx) } else { 0 };
                prop_assert_eq!(i64::from(i8_at(&xb, row * k + i)), want);
            }
        }
        let img = lay.int8_weights_image(&w);
        let sw: Vec<f32> = if per_channel {
            w.chunks(k).map(int8_scale).collect()
        } else {
            vec![int8_scale(&w)]
        };
        prop_assert_eq!(&img.scales, &sw);
        for i in 0..k {
            for c in 0..n {
                let s = sw[if per_channel { c } else { 0 }];
                prop_assert_eq!(i64::from(i8_at(&img.bytes, i * n + c)), quant(w[c * k + i], s));
            }
        }
        let mut pb = vec![0x55u8; (n / tn) * tk * tn];
        lay.pack_params_int8(&img, Some(&b), sx, 0.25, &mut pb);
        for c in 0..n {
            let word = |w: usize| {
                let at = |byte: usize| pb[(c / tn) * tk * tn + (4 * w + byte) * tn + c % tn] as u32;
                f32::from_bits(at(0) | at(1) << 8 | at(2) << 16 | at(3) << 24)
            };
            prop_assert_eq!(word(0), b[c]);
            prop_assert_eq!(word(1), sx * sw[if per_channel { c } else { 0 }]);
            prop_assert_eq!(word(2), 0.25);
        }
    }

    /// "%e: E [M, K] (two planes [M, 2K]: per block of tile_k columns, hi then lo) (the selected
    /// rows, gathered by the host)"; "%xt: X^T [K, N]"; "%logits_t: logits^T [M, N] f32".
    #[test]
    fn lm_head_buffers(rows in 1usize..=3, seed: u64, which in 0usize..4) {
        let name = ["t_lm", "t_lm_top", "t_lm_split", "t_lm_split_npu2"][which];
        let lay = LmHeadLayout::of(&spec(name)).unwrap();
        let (d, vocab, tk) = (128, 1000, 64);
        let np = if which == 3 { 16 } else { 8 };
        let split = which >= 2;
        let emb = values(seed, vocab * d);
        let x = values(seed ^ 1, rows * d);
        let subset: Vec<u32> = (0..77u32).map(|i| (i * 13 + seed as u32 % 7) % vocab as u32).collect();
        let mut eb = buf(lay.args(), "e");
        let count = if which == 1 {
            lay.pack_e_subset(&emb, &subset, &mut eb);
            subset.len()
        } else {
            lay.pack_e(&emb, vocab, &mut eb);
            vocab
        };
        let ld = if split { 2 * d } else { d };
        prop_assert_eq!(eb.len() / 2 % ld, 0);
        for v in 0..eb.len() / 2 / ld {
            let id = if which == 1 { subset.get(v).map(|&i| i as usize) } else { Some(v) };
            for i in 0..d {
                let e = match id { Some(id) if v < count => emb[id * d + i], _ => 0.0 };
                if split {
                    let (hi, lo) = planes(e);
                    let col = (i / tk) * 2 * tk + i % tk;
                    prop_assert_eq!(bf16_at(&eb, v * ld + col), hi);
                    prop_assert_eq!(bf16_at(&eb, v * ld + col + tk), lo);
                } else {
                    prop_assert_eq!(bf16_at(&eb, v * ld + i), bf16(e), "e[{}, {}]", v, i);
                }
            }
        }
        let mut xt = buf(lay.args(), "xt");
        lay.pack_xt(&x, rows, &mut xt);
        for i in 0..d {
            for r in 0..np {
                let want = if r < rows { bf16(x[r * d + i]) } else { 0.0 };
                prop_assert_eq!(bf16_at(&xt, i * np + r), want);
            }
        }
        let mut lt = buf(lay.args(), "logits_t");
        for (i, v) in lt.chunks_exact_mut(4).enumerate() {
            v.copy_from_slice(&(i as f32 * 0.5).to_le_bytes());
        }
        let mut out = vec![0.0; rows * count];
        lay.unpack_logits(&lt, rows, count, &mut out);
        for r in 0..rows {
            for v in 0..count {
                prop_assert_eq!(out[r * count + v], f32_at(&lt, v * np + r), "logits[{}, {}]", r, v);
            }
        }
    }

    /// "%kv: per head h, per block j of tile_n keys, kv_elems bf16 at ((h*kv_blocks + j)*kv_elems):
    /// K_j^T (hd x tile_n) then V_j (tile_n x hd), each in aie::mmul B blocks of S x T (blocks
    /// row-major, elements row-major in a block); rows past kv_len are zero", then the parameter
    /// object: word 0 = valid keys, word 1 = causal offset.
    #[test]
    fn attention_buffers(seed: u64, which in 0usize..4, kv_fill in 1usize..=48, q_fill in 1usize..=36) {
        let name = ["t_attn_enc", "t_attn_causal", "t_attn_cross", "t_attn_cross_npu2"][which];
        let lay = AttentionLayout::of(&spec(name)).unwrap();
        // (S, T) of bf16 aie::mmul: npu1 4x8x4, npu2 4x8x8; kv padded, tile_n, q padded.
        let ((s, t), kvp, tn, q_pad) =
            [((8, 4), 40, 8, 40), ((8, 4), 24, 8, 8), ((8, 4), 48, 16, 8), ((8, 8), 48, 16, 8)][which];
        let (heads, hd) = (2, 64);
        let d = heads * hd;
        let kv_len = kv_fill.min(kvp);
        let q_len = q_fill.min(q_pad);
        let (q, k, v) = (values(seed, q_len * d), values(seed ^ 1, kv_len * d), values(seed ^ 2, kv_len * d));
        let mut qb = buf(lay.args(), "q");
        lay.pack_q(&q, q_len, &mut qb);
        for (i, want) in padded(&q, q_pad * d, bf16).into_iter().enumerate() {
            prop_assert_eq!(bf16_at(&qb, i), want);
        }
        let mut kvb = buf(lay.args(), "kv");
        lay.pack_kv(&k, &v, kv_len, 7, &mut kvb);
        let kv_elems = 2 * tn * hd;
        let blocks = kvp / tn;
        let blk = |r: usize, c: usize, cols: usize| ((r / s) * (cols / t) + c / t) * (s * t) + (r % s) * t + c % t;
        for h in 0..heads {
            for key in 0..kvp {
                let base = (h * blocks + key / tn) * kv_elems;
                for dd in 0..hd {
                    let (kw, vw) = if key < kv_len {
                        (bf16(k[key * d + h * hd + dd]), bf16(v[key * d + h * hd + dd]))
                    } else {
                        (0.0, 0.0)
                    };
                    prop_assert_eq!(bf16_at(&kvb, base + blk(dd, key % tn, tn)), kw, "K^T h{} key {} d {}", h, key, dd);
                    prop_assert_eq!(bf16_at(&kvb, base + tn * hd + blk(key % tn, dd, hd)), vw, "V h{} key {} d {}", h, key, dd);
                }
            }
        }
        let p = heads * blocks * kv_elems;
        prop_assert_eq!(kvb.len(), 2 * (p + kv_elems));
        prop_assert_eq!(word_bf16(&kvb, p, p + 1), kv_len as u32);
        prop_assert_eq!(word_bf16(&kvb, p + 2, p + 3), 7);
        prop_assert!((4..kv_elems).all(|i| u16_at(&kvb, p + i) == 0));
        let mut ob = buf(lay.args(), "o");
        for (i, x) in ob.chunks_exact_mut(2).enumerate() {
            x.copy_from_slice(&(i as u16 | 0x3c00).to_le_bytes());
        }
        let mut out = vec![0.0; q_len * d];
        lay.unpack_o(&ob, q_len, &mut out);
        prop_assert!((0..q_len * d).all(|i| out[i] == bf16_at(&ob, i)));
    }

    /// "%x [M, dim], %params [gamma; beta] 2 x dim f32, %y [M, dim]" (bf16 or f32 entries).
    #[test]
    fn layernorm_buffers(rows in 1usize..=20, seed: u64, f32_entry: bool) {
        let lay = LayerNormLayout::of(&spec(if f32_entry { "t_ln_f32" } else { "t_ln" })).unwrap();
        let dim = 512;
        let rd = |v: f32| if f32_entry { v } else { bf16(v) };
        let at = |b: &[u8], i: usize| if f32_entry { f32_at(b, i) } else { bf16_at(b, i) };
        let (x, g, be) = (values(seed, rows * dim), values(seed ^ 1, dim), values(seed ^ 2, dim));
        let mut xb = buf(lay.args(), "x");
        lay.pack_x(&x, rows, &mut xb);
        for (i, want) in padded(&x, 24 * dim, rd).into_iter().enumerate() {
            prop_assert_eq!(at(&xb, i), want);
        }
        let mut pb = buf(lay.args(), "params");
        lay.pack_params(&g, &be, &mut pb);
        for i in 0..dim {
            prop_assert_eq!(f32_at(&pb, i), rd(g[i]));
            prop_assert_eq!(f32_at(&pb, dim + i), rd(be[i]));
        }
        let yb: Vec<u8> = (0..buf(lay.args(), "y").len()).map(|i| (i * 7 % 251) as u8 & 0x3f).collect();
        let mut out = vec![0.0; rows * dim];
        lay.unpack_y(&yb, rows, &mut out);
        prop_assert!((0..rows * dim).all(|i| out[i] == at(&yb, i)));
    }
}

/// "%x: X [M, d]"; "%w1: W1^T [d, d_ff] (two planes), then parameter tiles (b1)"; "%h: H [M,
/// d_ff] bf16 scratch, then the residual R [M, d] bf16 at element M*d_ff"; "%w2: W2^T [d_ff, d]
/// then parameter tiles (b2)"; "%y: Y [M, d]".
#[test]
fn ffn_buffers() {
    for name in ["t_ffn", "t_ffn_split"] {
        let lay = FfnLayout::of(&spec(name)).unwrap();
        let names: Vec<&str> = lay.args().iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["x", "w1", "h", "w2", "y"], "{name}");
        let (rows, m, d, dff) = (20, 24, 128, 512);
        let h_len = lay.args()[2].len;
        assert_eq!(h_len, m * dff + m * d, "{name}: H, then R");
        assert_eq!(lay.residual_at(), (2, 2 * m * dff), "{name}: R behind H");
        let x = values(5, rows * d);
        let mut xb = buf(lay.args(), "x");
        lay.pack_rows(&x, rows, &mut xb);
        for (i, want) in padded(&x, m * d, bf16).into_iter().enumerate() {
            assert_eq!(bf16_at(&xb, i), want);
        }
    }
}
