//! Whisper's log-mel spectrogram, reproducing `whisper.audio.log_mel_spectrogram(audio, n_mels,
//! padding=N_SAMPLES)` of openai-whisper:
//!
//! 1. append `padding` zero samples;
//! 2. STFT with n_fft 400, hop 160, periodic Hann window, `center=True` (reflect-pad 200 samples
//!    on both sides), dropping the last frame;
//! 3. power spectrum `|X|²`, Slaney mel filter bank (as `librosa.filters.mel(htk=False,
//!    norm="slaney")`);
//! 4. `log10(max(x, 1e-10))`, then `max(x, max(x) - 8)`, then `(x + 4) / 4`.
//!
//! Like Whisper (torch float32) the signal path is f32; window and filters are computed in f64
//! and rounded once.

use std::sync::Arc;

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::audio::SAMPLE_RATE;

/// FFT length (25 ms at 16 kHz).
pub const N_FFT: usize = 400;
/// Hop between frames (10 ms at 16 kHz).
pub const HOP_LENGTH: usize = 160;
/// Samples in one 30-second window.
pub const N_SAMPLES: usize = 480_000;
/// Mel frames in one 30-second window.
pub const N_FRAMES: usize = N_SAMPLES / HOP_LENGTH;
/// Frequency bins of one real FFT frame.
pub const N_FREQS: usize = N_FFT / 2 + 1;

/// Frames computed per rayon task: large enough to amortise scheduling, small enough to balance.
const FRAMES_PER_TASK: usize = 128;

/// A log-mel spectrogram, row-major `[n_mels][n_frames]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mel {
    pub n_mels: usize,
    pub n_frames: usize,
    pub data: Vec<f32>,
}

impl Mel {
    /// Value of mel bin `mel` at frame `frame`.
    pub fn get(&self, mel: usize, frame: usize) -> f32 {
        self.data[mel * self.n_frames + frame]
    }

    /// One mel bin over all frames.
    pub fn row(&self, mel: usize) -> &[f32] {
        &self.data[mel * self.n_frames..(mel + 1) * self.n_frames]
    }

    /// Frames `start..start + n` as a row-major `[n_mels][n]` block, zero-filled past the end:
    /// Whisper's `pad_or_trim(mel[:, start:start + n], n)` for cutting 30 s windows.
    pub fn frames(&self, start: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; self.n_mels * n];
        let avail = self.n_frames.saturating_sub(start).min(n);
        if avail > 0 {
            for (m, dst) in out.chunks_exact_mut(n).enumerate() {
                dst[..avail].copy_from_slice(&self.row(m)[start..start + avail]);
            }
        }
        out
    }
}

/// Frames of real audio in the spectrogram of `n_samples` samples (the rest comes from the
/// 30 s of zero padding): Whisper's `content_frames = mel.shape[-1] - N_FRAMES`.
pub fn content_frames(n_samples: usize) -> usize {
    n_samples / HOP_LENGTH
}

/// Log-mel front end for one mel size; reusable and shareable across threads.
pub struct LogMel {
    n_mels: usize,
    /// Dense `[n_mels][N_FREQS]` Slaney filter bank.
    filters: Vec<f32>,
    /// Per mel bin, the range of FFT bins where its triangle is non-zero.
    support: Vec<(usize, usize)>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel")
            .field("n_mels", &self.n_mels)
            .finish()
    }
}

impl LogMel {
    /// A front end with `n_mels` bins (Whisper uses 80, or 128 for large-v3).
    ///
    /// # Panics
    /// If `n_mels` is 0.
    pub fn new(n_mels: usize) -> LogMel {
        assert!(n_mels > 0, "a mel spectrogram needs at least one mel bin");
        let filters = mel_filters(SAMPLE_RATE as f64, N_FFT, n_mels);
        let support = filters
            .chunks_exact(N_FREQS)
            .map(|row| {
                let first = row.iter().position(|&w| w != 0.0);
                let last = row.iter().rposition(|&w| w != 0.0);
                match (first, last) {
                    (Some(a), Some(b)) => (a, b + 1),
                    _ => (0, 0),
                }
            })
            .collect();
        LogMel {
            n_mels,
            filters,
            support,
            window: hann_window(N_FFT),
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
        }
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// The filter bank, row-major `[n_mels][N_FFT / 2 + 1]`.
    pub fn filters(&self) -> &[f32] {
        &self.filters
    }

    /// Whisper's `log_mel_spectrogram(samples, n_mels, padding=N_SAMPLES)`:
    /// `(samples.len() + N_SAMPLES) / HOP_LENGTH` frames.
    pub fn compute(&self, samples: &[f32]) -> Mel {
        self.compute_with_padding(samples, N_SAMPLES)
    }

    /// `log_mel_spectrogram(samples, n_mels, padding)` for any padding.
    /// Yields `(samples.len() + padding) / HOP_LENGTH` frames; no frames if that is 0.
    pub fn compute_with_padding(&self, samples: &[f32], padding: usize) -> Mel {
        let total = samples.len() + padding;
        let n_frames = total / HOP_LENGTH;
        let n_mels = self.n_mels;
        if n_frames == 0 {
            return Mel {
                n_mels,
                n_frames,
                data: Vec::new(),
            };
        }

        // log10 of the mel energies, frame-major while computing (each task owns whole frames).
        let mut by_frame = vec![0.0f32; n_frames * n_mels];
        by_frame
            .par_chunks_mut(FRAMES_PER_TASK * n_mels)
            .enumerate()
            .for_each_init(
                || {
                    (
                        self.fft.make_input_vec(),
                        self.fft.make_output_vec(),
                        self.fft.make_scratch_vec(),
                        vec![0.0f32; N_FREQS],
                    )
                },
                |(frame, spec, scratch, power), (task, out)| {
                    let first = task * FRAMES_PER_TASK;
                    for (i, mels) in out.chunks_exact_mut(n_mels).enumerate() {
                        self.log_mel_frame(
                            samples,
                            total,
                            first + i,
                            frame,
                            spec,
                            scratch,
                            power,
                            mels,
                        );
                    }
                },
            );

        let max = by_frame.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let floor = max - 8.0;
        let mut data = vec![0.0f32; n_mels * n_frames];
        // Transpose to [n_mels][n_frames] while applying the dynamic-range clamp and scaling.
        data.par_chunks_mut(n_frames)
            .enumerate()
            .for_each(|(m, row)| {
                for (t, v) in row.iter_mut().enumerate() {
                    let x = by_frame[t * n_mels + m];
                    *v = (x.max(floor) + 4.0) / 4.0;
                }
            });
        Mel {
            n_mels,
            n_frames,
            data,
        }
    }

    /// `log10(max(filters · |STFT frame t|², 1e-10))` into `mels`.
    #[allow(clippy::too_many_arguments)]
    fn log_mel_frame(
        &self,
        samples: &[f32],
        total: usize,
        t: usize,
        frame: &mut [f32],
        spec: &mut [Complex<f32>],
        scratch: &mut [Complex<f32>],
        power: &mut [f32],
        mels: &mut [f32],
    ) {
        let n = samples.len();
        let half = N_FFT / 2;
        let centre = t * HOP_LENGTH;
        // Past the audio by more than half a window the frame sees only padding zeros (the
        // right reflection lands in the zero padding too): its spectrum is exactly 0.
        // (Only when the right reflection cannot reach real samples, i.e. padding > half.)
        let reflected_zero = centre + half <= total || 2 * total > n + centre + half;
        if centre >= n + half && reflected_zero {
            mels.fill(1e-10f32.log10());
            return;
        }
        // Sample of the zero-padded signal, reflected at both ends as torch.stft(center=True)
        // does with mode="reflect" (mirror without repeating the edge sample).
        let at = |k: usize| if k < n { samples[k] } else { 0.0 };
        for (j, (dst, w)) in frame.iter_mut().zip(&self.window).enumerate() {
            let pos = centre + j; // index into the signal padded by `half` on the left
            let x = if pos < half {
                at(half - pos)
            } else if pos - half >= total {
                let k = pos - half - total; // 0-based offset past the right edge
                total.checked_sub(2 + k).map_or(0.0, at)
            } else {
                at(pos - half)
            };
            *dst = x * w;
        }
        self.fft
            .process_with_scratch(frame, spec, scratch)
            .expect("buffers come from the same FFT plan");
        for (p, c) in power.iter_mut().zip(spec.iter()) {
            *p = c.re * c.re + c.im * c.im;
        }
        for ((m, &(a, b)), out) in self.support.iter().enumerate().zip(mels.iter_mut()) {
            let w = &self.filters[m * N_FREQS + a..m * N_FREQS + b];
            let e: f32 = w.iter().zip(&power[a..b]).map(|(w, p)| w * p).sum();
            *out = e.max(1e-10).log10();
        }
    }
}

/// Periodic Hann window of length `n` (`torch.hann_window(n)`).
pub fn hann_window(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
            (0.5 - 0.5 * x.cos()) as f32
        })
        .collect()
}

/// Slaney mel scale (librosa `hz_to_mel(htk=False)`): linear below 1 kHz, logarithmic above.
pub fn hz_to_mel(hz: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= MIN_LOG_HZ {
        min_log_mel + (hz / MIN_LOG_HZ).ln() / logstep
    } else {
        hz / F_SP
    }
}

/// Inverse of [`hz_to_mel`] (librosa `mel_to_hz(htk=False)`).
pub fn mel_to_hz(mel: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        MIN_LOG_HZ * (logstep * (mel - min_log_mel)).exp()
    } else {
        F_SP * mel
    }
}

/// `librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False, norm="slaney")` as f32,
/// row-major `[n_mels][n_fft / 2 + 1]`: triangles between consecutive points equally spaced on
/// the Slaney mel scale, each scaled by `2 / (f[i+2] - f[i])` so that its area is constant.
pub fn mel_filters(sample_rate: f64, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_freqs = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_freqs)
        .map(|k| k as f64 * sample_rate / n_fft as f64)
        .collect();
    let (mel_lo, mel_hi) = (hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0));
    let mel_points: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mel_lo + (mel_hi - mel_lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = vec![0.0f32; n_mels * n_freqs];
    for m in 0..n_mels {
        let (left, centre, right) = (mel_points[m], mel_points[m + 1], mel_points[m + 2]);
        let enorm = 2.0 / (right - left);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - left) / (centre - left);
            let upper = (right - f) / (right - centre);
            let w = lower.min(upper).max(0.0);
            weights[m * n_freqs + k] = (w * enorm) as f32;
        }
    }
    weights
}
