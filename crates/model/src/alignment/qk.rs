//! Recording the cross-attention logits of the alignment heads during a decoder pass.

/// Pre-softmax cross-attention logits (q·kᵀ / √head_dim) of chosen heads, filled by
/// [`crate::model::Decoder::forward_collect`] for the first sequence of its batch.
pub struct CrossQk {
    heads: Vec<(usize, usize)>,
    /// Per entry of `heads`: `[rows][n_audio_ctx]`, row-major; empty until recorded.
    logits: Vec<Vec<f32>>,
    rows: usize,
}

impl CrossQk {
    /// A collector for `heads` (decoder layer, head).
    pub fn new(heads: &[(usize, usize)]) -> CrossQk {
        CrossQk {
            heads: heads.to_vec(),
            logits: vec![Vec::new(); heads.len()],
            rows: 0,
        }
    }

    /// Records layer `layer`'s heads from its cross queries `q` (`[rows, d]`) and keys
    /// `k` (`[n_audio_ctx, d]`), `n_heads` heads of `d / n_heads` each.
    pub(crate) fn record(
        &mut self,
        layer: usize,
        q: &[f32],
        rows: usize,
        k: &[f32],
        n_heads: usize,
    ) {
        let d = q.len() / rows.max(1);
        let hd = d / n_heads;
        let n_audio = k.len() / d;
        let scale = 1.0 / (hd as f32).sqrt();
        self.rows = rows;
        for (slot, &(l, h)) in self.heads.iter().enumerate() {
            if l != layer {
                continue;
            }
            let mut out = vec![0.0f32; rows * n_audio];
            for r in 0..rows {
                let qh = &q[r * d + h * hd..r * d + (h + 1) * hd];
                for (f, o) in out[r * n_audio..(r + 1) * n_audio].iter_mut().enumerate() {
                    let kh = &k[f * d + h * hd..f * d + (h + 1) * hd];
                    *o = qh.iter().zip(kh).map(|(a, b)| a * b).sum::<f32>() * scale;
                }
            }
            self.logits[slot] = out;
        }
    }

    /// Rows recorded (the tokens of the pass).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The recorded logits of each head, `[rows][n_audio_ctx]`; `None` if a head's layer was
    /// never run.
    pub fn heads(&self) -> Option<&[Vec<f32>]> {
        self.logits
            .iter()
            .all(|l| !l.is_empty())
            .then_some(self.logits.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_scaled_dot_products_of_the_chosen_head() {
        // d = 4, two heads of 2; two audio frames; one query row.
        let q = [1.0, 2.0, 3.0, 4.0];
        let k = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0];
        let mut c = CrossQk::new(&[(0, 1)]);
        assert!(c.heads().is_none());
        c.record(1, &q, 1, &k, 2); // another layer: ignored
        assert!(c.heads().is_none());
        c.record(0, &q, 1, &k, 2);
        let s = 1.0 / 2f32.sqrt();
        assert_eq!(c.heads().unwrap()[0], vec![4.0 * s, 3.0 * s]);
    }
}
