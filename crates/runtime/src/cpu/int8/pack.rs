//! Weights quantised to int8 (symmetric, one scale per output channel) and packed in panels.
//!
//! Panel `p` holds channels `16p..16p+16`; inside it, group `g` (k values `4g..4g+4`) is 64
//! contiguous bytes: channel `j`'s four values at bytes `4j..4j+4`. One 512-bit load (or two
//! 256-bit loads) is then exactly the operand of `vpdpbusd` for 16 channels, and each panel is
//! one contiguous stream. k is padded to a multiple of 4 and n to a multiple of 16 with zeros.

use rayon::prelude::*;

use super::isa::{GROUP, PANEL};

/// A linear layer's weights as the int8 kernels read them.
pub struct Int8Weights {
    pub(crate) k: usize,
    pub(crate) n: usize,
    /// Groups of 4 k values (k rounded up).
    pub(crate) groups: usize,
    pub(crate) q: Vec<i8>,
    /// Per channel (padded to whole panels): the dequantisation scale max|w|/127 ...
    pub(crate) scales: Vec<f32>,
    /// ... and 128 × Σ q, what the +128 activation offset of the VNNI kernels adds.
    pub(crate) offset_sums: Vec<i32>,
}

impl std::fmt::Debug for Int8Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Int8Weights")
            .field("k", &self.k)
            .field("n", &self.n)
            .finish()
    }
}

/// The int8 value of `v` at scale `1 / inv_scale`: round half to even, clamped to ±127 (so
/// that the AVX2 kernel's sign trick and the VNNI offset stay exact).
#[inline(always)]
pub(crate) fn quantize_value(v: f32, inv_scale: f32) -> i8 {
    // Adding and removing 1.5·2²³ rounds to the nearest integer, ties to even (the default
    // rounding mode), in plain SSE2: `round_ties_even` is a libm call without SSE4.1.
    const MAGIC: f32 = 12_582_912.0;
    let y = (v * inv_scale).clamp(-127.0, 127.0);
    ((y + MAGIC) - MAGIC) as i8
}

impl Int8Weights {
    /// Quantises `w` (`[n, k]`, PyTorch layout) per output channel and packs it; parallel over
    /// panels on the current rayon pool.
    ///
    /// # Panics
    /// If `w` is shorter than `n × k`.
    pub fn quantize(w: &[f32], k: usize, n: usize) -> Int8Weights {
        assert!(
            w.len() >= n * k,
            "int8 weights: {} values for {n} × {k}",
            w.len()
        );
        let groups = k.div_ceil(GROUP);
        let panels = n.div_ceil(PANEL);
        let stride = groups * GROUP * PANEL;
        let mut q = vec![0i8; panels * stride];
        let mut scales = vec![0.0f32; panels * PANEL];
        let mut offset_sums = vec![0i32; panels * PANEL];
        q.par_chunks_mut(stride.max(1))
            .zip(scales.par_chunks_mut(PANEL))
            .zip(offset_sums.par_chunks_mut(PANEL))
            .enumerate()
            .for_each(|(p, ((qp, sp), op))| {
                for j in 0..PANEL.min(n.saturating_sub(p * PANEL)) {
                    let c = p * PANEL + j;
                    let row = &w[c * k..(c + 1) * k];
                    let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    if max == 0.0 || !max.is_finite() {
                        continue;
                    }
                    sp[j] = max / 127.0;
                    let inv = 127.0 / max;
                    let mut sum = 0i32;
                    for (i, &v) in row.iter().enumerate() {
                        let qv = quantize_value(v, inv);
                        qp[(i / GROUP) * GROUP * PANEL + j * GROUP + i % GROUP] = qv;
                        sum += i32::from(qv);
                    }
                    op[j] = 128 * sum;
                }
            });
        Int8Weights {
            k,
            n,
            groups,
            q,
            scales,
            offset_sums,
        }
    }

    pub fn in_features(&self) -> usize {
        self.k
    }

    pub fn out_features(&self) -> usize {
        self.n
    }

    /// Bytes between consecutive panels.
    pub(crate) fn panel_stride(&self) -> usize {
        self.groups * GROUP * PANEL
    }

    pub(crate) fn panels(&self) -> usize {
        self.n.div_ceil(PANEL)
    }

    /// Bytes held (weights, scales and sums).
    pub fn bytes(&self) -> usize {
        self.q.len() + 8 * self.scales.len()
    }

    /// Exact Σ a·w of signed activations `a` (`groups × 4` values) with channel `c`: the
    /// sparse LM head's column access.
    pub(crate) fn dot_channel(&self, a: &[i8], c: usize) -> i32 {
        let (p, j) = (c / PANEL, c % PANEL);
        let panel = &self.q[p * self.panel_stride()..(p + 1) * self.panel_stride()];
        panel
            .chunks_exact(GROUP * PANEL)
            .zip(a.chunks_exact(GROUP))
            .map(|(wg, ag)| {
                wg[j * GROUP..(j + 1) * GROUP]
                    .iter()
                    .zip(ag)
                    .map(|(&w, &a)| i32::from(w) * i32::from(a))
                    .sum::<i32>()
            })
            .sum()
    }
}
