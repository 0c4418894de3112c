//! The decoder's token embedding, read row by row for its input. Its weights are tied to the LM
//! head's, a 26 M-entry table for the multilingual models: where the LM head keeps them in f32
//! the rows are read from there (no second copy); where it keeps only int8, the table is held as
//! f16, exactly a float16 checkpoint's values, so the decoder's input is not quantised.

use half::f16;
use half::slice::HalfFloatSliceExt;
use npu_runtime::{Linear, Runtime};

pub(crate) enum TokenEmbedding {
    /// Rows of the LM head's f32 weights.
    Tied,
    /// f16 values, when every entry is one.
    F16(Vec<f16>),
    F32(Vec<f32>),
}

impl TokenEmbedding {
    /// The embedding of `table` (`[n_vocab, d]`) and the LM head built from it.
    pub(crate) fn with_lm_head(rt: &Runtime, table: Vec<f32>, d: usize) -> (Self, Linear) {
        let vocab = table.len() / d;
        if !rt.keeps_only_int8_weights() {
            return (TokenEmbedding::Tied, rt.linear(table, None, d, vocab));
        }
        let mut half = vec![f16::ZERO; table.len()];
        half.convert_from_f32_slice(&table);
        let exact = half.iter().zip(&table).all(|(h, &f)| h.to_f32() == f);
        let own = if exact {
            TokenEmbedding::F16(half)
        } else {
            TokenEmbedding::F32(table.clone())
        };
        (own, rt.linear(table, None, d, vocab))
    }

    /// Adds row `token` of the table to `out` (`d` entries).
    pub(crate) fn add_row(&self, lm_head: &Linear, token: usize, out: &mut [f32]) {
        let d = out.len();
        let range = token * d..(token + 1) * d;
        match self {
            TokenEmbedding::Tied => {
                let w = lm_head
                    .weight()
                    .expect("an LM head with f32 weights (TokenEmbedding::Tied)");
                out.iter_mut().zip(&w[range]).for_each(|(o, e)| *o += e);
            }
            TokenEmbedding::F16(t) => out
                .iter_mut()
                .zip(&t[range])
                .for_each(|(o, e)| *o += e.to_f32()),
            TokenEmbedding::F32(t) => out.iter_mut().zip(&t[range]).for_each(|(o, e)| *o += e),
        }
    }
}
