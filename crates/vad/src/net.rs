//! The Silero VAD v6 network at 16 kHz. Each 512-sample frame is preceded by the last 64 samples
//! of the frame before (zeros for the first), reflect-padded by 64 on the right, and turned into
//! 4 STFT magnitude columns by a fixed convolution; four ReLU convolutions reduce them to one
//! 128-vector, an LSTM cell carries state across frames, and a 1×1 convolution + sigmoid gives
//! the probability.
//!
//! Everything before the LSTM's recurrence is frame-independent, so it runs for a block of
//! frames at once as im2col + GEMM; only the recurrence (`W_hh · h`) runs frame by frame.

use crate::weights::{Conv, Weights, HIDDEN, HOP, N_FFT, STFT_OUT};
use crate::FRAME_SAMPLES;

/// Samples of the previous frame prepended to each frame.
const CONTEXT: usize = 64;
/// Context + frame.
const CHUNK: usize = CONTEXT + FRAME_SAMPLES;
/// After the right reflect padding (by `CONTEXT`, as the model's STFT pads).
const PADDED: usize = CHUNK + CONTEXT;
/// STFT columns per frame.
const COLUMNS: usize = (PADDED - N_FFT) / HOP + 1;
/// Frames encoded per batch: big enough for efficient GEMMs, small enough that the im2col
/// buffers stay a few MB whatever the recording's length.
const BLOCK: usize = 512;

/// One probability per started 512-sample frame of `audio`.
pub(crate) fn probabilities(w: &Weights, audio: &[f32]) -> Vec<f32> {
    let frames = audio.len().div_ceil(FRAME_SAMPLES);
    let mut out = Vec::with_capacity(frames);
    let mut h = [0f32; HIDDEN];
    let mut c = [0f32; HIDDEN];
    let mut gates = [0f32; 4 * HIDDEN];
    for first in (0..frames).step_by(BLOCK) {
        let n = BLOCK.min(frames - first);
        let features = encode(w, audio, first, n);
        // The input half of every frame's gates at once.
        let mut gates_x = matmul_bt(&features, n, HIDDEN, &w.w_ih, 4 * HIDDEN);
        for row in gates_x.chunks_exact_mut(4 * HIDDEN) {
            for (g, b) in row.iter_mut().zip(&w.b_gates) {
                *g += b;
            }
        }
        for gx in gates_x.chunks_exact(4 * HIDDEN) {
            for (j, g) in gates.iter_mut().enumerate() {
                *g = gx[j] + dot(&w.w_hh[j * HIDDEN..(j + 1) * HIDDEN], &h);
            }
            // PyTorch's gate order: input, forget, cell, output.
            for u in 0..HIDDEN {
                let i = sigmoid(gates[u]);
                let f = sigmoid(gates[HIDDEN + u]);
                let g = gates[2 * HIDDEN + u].tanh();
                let o = sigmoid(gates[3 * HIDDEN + u]);
                c[u] = f * c[u] + i * g;
                h[u] = o * c[u].tanh();
            }
            let logit: f32 = w
                .w_out
                .iter()
                .zip(&h)
                .map(|(a, x)| a * x.max(0.0))
                .sum::<f32>()
                + w.b_out;
            out.push(sigmoid(logit));
        }
    }
    out
}

/// The 128 features of frames `first..first + n`, `[n][128]`.
fn encode(w: &Weights, audio: &[f32], first: usize, n: usize) -> Vec<f32> {
    // im2col of the STFT convolution: one row per STFT column.
    let mut cols = vec![0f32; n * COLUMNS * N_FFT];
    let mut padded = [0f32; PADDED];
    for f in 0..n {
        let start = ((first + f) * FRAME_SAMPLES) as isize - CONTEXT as isize;
        for (j, v) in padded[..CHUNK].iter_mut().enumerate() {
            let idx = start + j as isize;
            *v = if idx >= 0 && (idx as usize) < audio.len() {
                audio[idx as usize]
            } else {
                0.0
            };
        }
        // Reflect padding excludes the edge sample: padded[CHUNK + j] = chunk[CHUNK - 2 - j].
        for j in 0..CONTEXT {
            padded[CHUNK + j] = padded[CHUNK - 2 - j];
        }
        for t in 0..COLUMNS {
            let row = (f * COLUMNS + t) * N_FFT;
            cols[row..row + N_FFT].copy_from_slice(&padded[t * HOP..t * HOP + N_FFT]);
        }
    }
    let spec = matmul_bt(&cols, n * COLUMNS, N_FFT, &w.stft, STFT_OUT);
    let bins = STFT_OUT / 2;
    let mut act: Vec<f32> = spec
        .chunks_exact(STFT_OUT)
        .flat_map(|r| (0..bins).map(move |b| (r[b] * r[b] + r[bins + b] * r[bins + b]).sqrt()))
        .collect();
    let mut len = COLUMNS;
    for conv in &w.convs {
        (act, len) = conv_relu(&act, n, len, conv);
    }
    debug_assert_eq!(len, 1);
    act
}

/// Kernel-3, padding-1 convolution + bias + ReLU over `n` independent sequences of `len` steps,
/// channels last (`[n][len][c_in]` in, `[n][len_out][c_out]` out).
fn conv_relu(x: &[f32], n: usize, len: usize, conv: &Conv) -> (Vec<f32>, usize) {
    let len_out = (len + 2 - 3) / conv.stride + 1;
    let k = conv.c_in * 3;
    let mut cols = vec![0f32; n * len_out * k];
    for f in 0..n {
        for t in 0..len_out {
            let row = &mut cols[(f * len_out + t) * k..][..k];
            for tap in 0..3 {
                let Some(pos) = (t * conv.stride + tap).checked_sub(1).filter(|&p| p < len) else {
                    continue;
                };
                let src = &x[(f * len + pos) * conv.c_in..][..conv.c_in];
                // PyTorch weight layout [c_out][c_in][3]: column index ci * 3 + tap.
                for (ci, v) in src.iter().enumerate() {
                    row[ci * 3 + tap] = *v;
                }
            }
        }
    }
    let mut y = matmul_bt(&cols, n * len_out, k, &conv.w, conv.c_out);
    for row in y.chunks_exact_mut(conv.c_out) {
        for (v, b) in row.iter_mut().zip(&conv.b) {
            *v = (*v + b).max(0.0);
        }
    }
    (y, len_out)
}

/// `a[m][k] · w[n][k]ᵀ` → `[m][n]`.
fn matmul_bt(a: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
    assert!(a.len() == m * k && w.len() == n * k);
    let mut out = vec![0f32; m * n];
    if m == 0 {
        return out;
    }
    // SAFETY: the strides describe `out` as m×n, `a` as m×k and `w` read transposed as k×n,
    // all row-major and in bounds by the assertion above; the buffers do not overlap.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
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
            gemm::Parallelism::None,
        );
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums let the compiler vectorise the loop.
    let mut acc = [0f32; 8];
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += ca[l] * cb[l];
        }
    }
    acc.iter().sum()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_bt_matches_the_definition() {
        let (m, k, n) = (3, 5, 4);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let got = matmul_bt(&a, m, k, &w, n);
        for i in 0..m {
            for o in 0..n {
                let want: f32 = (0..k).map(|j| a[i * k + j] * w[o * k + j]).sum();
                assert!((got[i * n + o] - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn conv_pads_and_strides_like_pytorch() {
        // One channel in and out, weights [1, 2, 3], bias 0, stride 2 over [1, 2, 3, 4]:
        // positions 0 and 2 see [0,1,2] and [2,3,4].
        let conv = Conv {
            w: vec![1.0, 2.0, 3.0],
            b: vec![0.0],
            c_in: 1,
            c_out: 1,
            stride: 2,
        };
        let (y, len) = conv_relu(&[1.0, 2.0, 3.0, 4.0], 1, 4, &conv);
        assert_eq!(len, 2);
        assert_eq!(y, vec![2.0 + 6.0, 2.0 + 6.0 + 12.0]);
    }
}
