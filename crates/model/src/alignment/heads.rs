//! Which cross-attention heads follow the timing of speech (the "alignment heads").
//!
//! openai-whisper found them per released model by inspection; checkpoints converted by
//! CTranslate2 (`config.json`) and Hugging Face (`generation_config.json`) carry them. For a
//! checkpoint that does not, the released models are recognised by their dimensions; anything
//! else uses every head of the last half of the decoder layers (openai-whisper's default).

use crate::weights::ModelDims;

/// (n_text_layer, n_text_state, multilingual, n_mels) of a released model, and its heads as
/// (decoder layer, head), from openai-whisper's `_ALIGNMENT_HEADS`. large-v1 and large-v2 share
/// their dimensions but not their heads, so neither is listed.
type Known = ((usize, usize, bool, usize), &'static [(usize, usize)]);
const KNOWN: [Known; 9] = [
    (
        (4, 384, false, 80), // tiny.en
        &[
            (1, 0),
            (2, 0),
            (2, 5),
            (3, 0),
            (3, 1),
            (3, 2),
            (3, 3),
            (3, 4),
        ],
    ),
    (
        (4, 384, true, 80), // tiny
        &[(2, 2), (3, 0), (3, 2), (3, 3), (3, 4), (3, 5)],
    ),
    (
        (6, 512, false, 80), // base.en
        &[(3, 3), (4, 7), (5, 1), (5, 5), (5, 7)],
    ),
    (
        (6, 512, true, 80), // base
        &[
            (3, 1),
            (4, 2),
            (4, 3),
            (4, 7),
            (5, 1),
            (5, 2),
            (5, 4),
            (5, 6),
        ],
    ),
    (
        (12, 768, false, 80), // small.en
        &[
            (6, 6),
            (7, 0),
            (7, 3),
            (7, 8),
            (8, 2),
            (8, 5),
            (8, 7),
            (9, 0),
            (9, 4),
            (9, 8),
            (9, 10),
            (10, 0),
            (10, 1),
            (10, 2),
            (10, 3),
            (10, 6),
            (10, 11),
            (11, 2),
            (11, 4),
        ],
    ),
    (
        (12, 768, true, 80), // small
        &[
            (5, 3),
            (5, 9),
            (8, 0),
            (8, 4),
            (8, 7),
            (8, 8),
            (9, 0),
            (9, 7),
            (9, 9),
            (10, 5),
        ],
    ),
    (
        (24, 1024, false, 80), // medium.en
        &[
            (11, 4),
            (14, 1),
            (14, 12),
            (14, 14),
            (15, 4),
            (16, 0),
            (16, 4),
            (16, 9),
            (17, 12),
            (17, 14),
            (18, 7),
            (18, 10),
            (18, 15),
            (20, 0),
            (20, 3),
            (20, 9),
            (20, 14),
            (21, 12),
        ],
    ),
    (
        (24, 1024, true, 80), // medium
        &[(13, 15), (15, 4), (15, 15), (16, 1), (20, 0), (23, 4)],
    ),
    (
        (32, 1280, true, 128), // large-v3
        &[
            (7, 0),
            (10, 17),
            (12, 18),
            (13, 12),
            (16, 1),
            (17, 14),
            (19, 11),
            (21, 4),
            (24, 1),
            (25, 6),
        ],
    ),
];
/// large-v3-turbo: 4 decoder layers over large-v3's encoder.
const TURBO: Known = (
    (4, 1280, true, 128),
    &[(2, 4), (2, 11), (3, 3), (3, 6), (3, 11), (3, 14)],
);

/// The alignment heads of a model: `from_checkpoint` when it names any that exist in the model,
/// else the known model's, else every head of the last half of the decoder layers.
pub fn resolve(from_checkpoint: &[(usize, usize)], dims: &ModelDims) -> Vec<(usize, usize)> {
    let valid: Vec<(usize, usize)> = from_checkpoint
        .iter()
        .copied()
        .filter(|&(l, h)| l < dims.n_text_layer && h < dims.n_text_head)
        .collect();
    if !valid.is_empty() {
        return valid;
    }
    let key = (
        dims.n_text_layer,
        dims.n_text_state,
        dims.is_multilingual(),
        dims.n_mels,
    );
    if let Some((_, heads)) = KNOWN.iter().chain([&TURBO]).find(|(k, _)| *k == key) {
        return heads.to_vec();
    }
    (dims.n_text_layer / 2..dims.n_text_layer)
        .flat_map(|l| (0..dims.n_text_head).map(move |h| (l, h)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(layers: usize, state: usize, heads: usize, vocab: usize) -> ModelDims {
        ModelDims {
            n_mels: 80,
            n_vocab: vocab,
            n_audio_ctx: 1500,
            n_audio_state: state,
            n_audio_head: heads,
            n_audio_layer: layers,
            n_text_ctx: 448,
            n_text_state: state,
            n_text_head: heads,
            n_text_layer: layers,
        }
    }

    #[test]
    fn checkpoint_heads_win_then_the_table_then_the_last_half() {
        let base = dims(6, 512, 8, 51865);
        assert_eq!(resolve(&[(5, 1), (9, 0)], &base), vec![(5, 1)]);
        assert_eq!(resolve(&[], &base)[0], (3, 1));
        assert_eq!(resolve(&[], &dims(4, 384, 6, 51864)).len(), 8); // tiny.en
        let odd = dims(4, 256, 4, 51865);
        let heads = resolve(&[], &odd);
        assert_eq!(heads.len(), 2 * 4);
        assert!(heads.iter().all(|&(l, h)| (2..4).contains(&l) && h < 4));
    }
}
