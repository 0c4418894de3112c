//! The Whisper network: audio encoder and text decoder with a KV cache.
//!
//! Mirrors `whisper/model.py` of openai-whisper (`AudioEncoder`, `TextDecoder`,
//! `ResidualAttentionBlock`, `MultiHeadAttention`). Every matrix product, attention, LayerNorm and
//! FFN goes through the [`Runtime`] kernel API, so the same code runs on the CPU and the NPU.

use crate::embedding::TokenEmbedding;
use std::borrow::Cow;
use std::sync::Arc;

use npu_runtime::{AttentionParams, Epilogue, KvTensor, Linear, Runtime, RuntimeError, SeqKv};

use crate::alignment::CrossQk;
use crate::cancel::CancelToken;
use crate::weights::{Checkpoint, ModelDims, WeightsError};

/// LayerNorm epsilon used by every Whisper LayerNorm.
const LN_EPS: f32 = 1e-5;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("the checkpoint's tensor {name} has shape {got:?}, expected {expected:?}")]
    Shape {
        name: String,
        got: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("the prompt is {len} tokens long, but the model's text context holds {max}")]
    ContextOverflow { len: usize, max: usize },
    /// The transcription's [`crate::CancelToken`] was cancelled.
    #[error("the transcription was cancelled")]
    Cancelled,
    #[error("no temperature to decode at: give at least one (0 = greedy or beam search)")]
    NoTemperatures,
    /// A decoding step merged with other transcriptions' steps failed (the message is the
    /// underlying error's).
    #[error("a decoding step shared with other transcriptions failed: {0}")]
    MergedStep(String),
}

/// LayerNorm weights (`weight`, `bias` in the checkpoint).
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// Query/key/value/output projections of one attention block (`MultiHeadAttention`).
struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
}

/// One `ResidualAttentionBlock`: self-attention, optional cross-attention, MLP.
struct Block {
    attn_ln: Norm,
    attn: Attention,
    cross: Option<(Norm, Attention)>,
    mlp_ln: Norm,
    fc1: Linear,
    fc2: Linear,
}

/// `AudioEncoder`: two convolutions (run as matrix products over im2col patches), sinusoidal
/// positions, the residual blocks and a final LayerNorm.
pub struct Encoder {
    conv1: Linear,
    conv2: Linear,
    positions: Vec<f32>,
    blocks: Vec<Block>,
    ln_post: Norm,
}

/// `TextDecoder`: token and learned position embeddings, blocks with cross-attention, final
/// LayerNorm, and logits against the (tied) token embedding.
pub struct Decoder {
    token_embedding: TokenEmbedding,
    lm_head: Linear,
    positions: Vec<f32>,
    blocks: Vec<Block>,
    ln: Norm,
}

/// A loaded Whisper model whose weights are packed for the runtime's kernels.
pub struct Network {
    pub dims: ModelDims,
    /// Cross-attention heads (decoder layer, head) that follow the timing of speech: the
    /// checkpoint's, else a known model's, else every head of the last half of the layers.
    pub alignment_heads: Vec<(usize, usize)>,
    pub encoder: Encoder,
    pub decoder: Decoder,
}

/// Reads tensors out of a checkpoint, checking their shapes.
struct Loader<'a> {
    ckpt: &'a mut Checkpoint,
    rt: &'a Runtime,
}

impl Loader<'_> {
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let t = self.ckpt.take(name)?;
        if t.shape != shape {
            return Err(ModelError::Shape {
                name: name.to_string(),
                got: t.shape,
                expected: shape.to_vec(),
            });
        }
        Ok(t.data)
    }

    fn linear(
        &mut self,
        prefix: &str,
        n_in: usize,
        n_out: usize,
        bias: bool,
    ) -> Result<Linear, ModelError> {
        let w = self.tensor(&format!("{prefix}.weight"), &[n_out, n_in])?;
        let b = if bias {
            Some(self.tensor(&format!("{prefix}.bias"), &[n_out])?)
        } else {
            None
        };
        Ok(self.rt.linear(w, b, n_in, n_out))
    }

    fn conv(&mut self, prefix: &str, n_in: usize, n_out: usize) -> Result<Linear, ModelError> {
        // A kernel-3 Conv1d is a matrix product over [in_channels * 3] patches; PyTorch's
        // [out, in, 3] weight is already that matrix in row-major order.
        let w = self.tensor(&format!("{prefix}.weight"), &[n_out, n_in, 3])?;
        let b = self.tensor(&format!("{prefix}.bias"), &[n_out])?;
        // Float whatever the compute type: int8 here measured 1.2 points of WER on the English
        // clips (beam 5, base) for 2 % of the encoder's time.
        Ok(self.rt.linear_float(w, Some(b), n_in * 3, n_out))
    }

    fn norm(&mut self, prefix: &str, dim: usize) -> Result<Norm, ModelError> {
        Ok(Norm {
            gamma: self.tensor(&format!("{prefix}.weight"), &[dim])?,
            beta: self.tensor(&format!("{prefix}.bias"), &[dim])?,
        })
    }

    fn attention(&mut self, prefix: &str, d: usize) -> Result<Attention, ModelError> {
        Ok(Attention {
            query: self.linear(&format!("{prefix}.q_proj"), d, d, true)?,
            // Whisper's key projection has no bias.
            key: self.linear(&format!("{prefix}.k_proj"), d, d, false)?,
            value: self.linear(&format!("{prefix}.v_proj"), d, d, true)?,
            out: self.linear(&format!("{prefix}.out_proj"), d, d, true)?,
        })
    }

    fn block(&mut self, prefix: &str, d: usize, cross: bool) -> Result<Block, ModelError> {
        let d_ff = self.ckpt_ffn_dim(prefix)?;
        Ok(Block {
            attn_ln: self.norm(&format!("{prefix}.self_attn_layer_norm"), d)?,
            attn: self.attention(&format!("{prefix}.self_attn"), d)?,
            cross: if cross {
                Some((
                    self.norm(&format!("{prefix}.encoder_attn_layer_norm"), d)?,
                    self.attention(&format!("{prefix}.encoder_attn"), d)?,
                ))
            } else {
                None
            },
            mlp_ln: self.norm(&format!("{prefix}.final_layer_norm"), d)?,
            fc1: self.linear(&format!("{prefix}.fc1"), d, d_ff, true)?,
            fc2: self.linear(&format!("{prefix}.fc2"), d_ff, d, true)?,
        })
    }

    /// The MLP width is 4 × d_model in every released Whisper, but read it from the weights.
    fn ckpt_ffn_dim(&mut self, prefix: &str) -> Result<usize, ModelError> {
        let name = format!("{prefix}.fc1.bias");
        match self.ckpt.shape(&name) {
            Some(shape) => Ok(shape[0]),
            None => Err(self.ckpt.get(&name).err().map_or_else(
                || ModelError::Shape {
                    name,
                    got: vec![],
                    expected: vec![0],
                },
                ModelError::from,
            )),
        }
    }
}

impl Network {
    /// Packs every weight of `ckpt` for the runtime. Tensors are moved out of the checkpoint.
    pub fn load(ckpt: &mut Checkpoint, rt: &Runtime) -> Result<Network, ModelError> {
        let dims = ckpt.dims;
        let ckpt_heads = ckpt.generation.alignment_heads.clone();
        let mut ld = Loader { ckpt, rt };
        let (da, dt) = (dims.n_audio_state, dims.n_text_state);

        let encoder = Encoder {
            conv1: ld.conv("model.encoder.conv1", dims.n_mels, da)?,
            conv2: ld.conv("model.encoder.conv2", da, da)?,
            positions: ld.tensor(
                "model.encoder.embed_positions.weight",
                &[dims.n_audio_ctx, da],
            )?,
            blocks: (0..dims.n_audio_layer)
                .map(|i| ld.block(&format!("model.encoder.layers.{i}"), da, false))
                .collect::<Result<_, _>>()?,
            ln_post: ld.norm("model.encoder.layer_norm", da)?,
        };

        let table = ld.tensor("model.decoder.embed_tokens.weight", &[dims.n_vocab, dt])?;
        let (token_embedding, lm_head) = TokenEmbedding::with_lm_head(rt, table, dt);
        let decoder = Decoder {
            token_embedding,
            lm_head,
            positions: ld.tensor(
                "model.decoder.embed_positions.weight",
                &[dims.n_text_ctx, dt],
            )?,
            blocks: (0..dims.n_text_layer)
                .map(|i| ld.block(&format!("model.decoder.layers.{i}"), dt, true))
                .collect::<Result<_, _>>()?,
            ln: ld.norm("model.decoder.layer_norm", dt)?,
        };
        let alignment_heads = crate::alignment::heads::resolve(&ckpt_heads, &dims);
        Ok(Network {
            dims,
            alignment_heads,
            encoder,
            decoder,
        })
    }
}

fn layernorm(
    rt: &Runtime,
    op: &str,
    x: &[f32],
    rows: usize,
    n: &Norm,
    out: &mut [f32],
) -> Result<(), RuntimeError> {
    rt.layernorm(op, x, rows, n.gamma.len(), &n.gamma, &n.beta, LN_EPS, out)
}

impl Encoder {
    /// Encodes one window of log-mel frames (`mel`: `[n_mels][n_frames]`, n_frames = 2 × n_audio_ctx)
    /// into `[n_audio_ctx, d_model]` audio features. Mirrors `AudioEncoder.forward`.
    pub fn forward(
        &self,
        rt: &Runtime,
        dims: &ModelDims,
        mel: &[f32],
    ) -> Result<Vec<f32>, ModelError> {
        self.forward_cancellable(rt, dims, mel, &CancelToken::new())
    }

    /// [`Encoder::forward`], stopping with [`ModelError::Cancelled`] between layers once
    /// `cancel` is cancelled (a window of a large model takes seconds on a CPU).
    pub fn forward_cancellable(
        &self,
        rt: &Runtime,
        dims: &ModelDims,
        mel: &[f32],
        cancel: &CancelToken,
    ) -> Result<Vec<f32>, ModelError> {
        let mut out = self.forward_batch(rt, dims, &[mel], cancel)?;
        Ok(out.remove(0))
    }

    /// Encodes several windows at once: their rows (`windows × n_audio_ctx`) go through every
    /// product, LayerNorm and FFN together, so each weight is read once per batch; attention
    /// stays within each window. Returns one `[n_audio_ctx, d_model]` output per window.
    pub fn forward_batch(
        &self,
        rt: &Runtime,
        dims: &ModelDims,
        mels: &[&[f32]],
        cancel: &CancelToken,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let (n_mels, d, n_ctx) = (dims.n_mels, dims.n_audio_state, dims.n_audio_ctx);
        let n_frames = 2 * n_ctx;
        let batch = mels.len();
        if batch == 0 {
            return Ok(Vec::new());
        }
        for mel in mels {
            assert_eq!(
                mel.len(),
                n_mels * n_frames,
                "mel window must be n_mels x {n_frames}"
            );
        }

        // conv1: kernel 3, stride 1, padding 1, then GELU.
        let patches: Vec<f32> = mels
            .iter()
            .flat_map(|mel| im2col(n_frames, n_frames, 1, n_mels, |t, c| mel[c * n_frames + t]))
            .collect();
        let mut h1 = vec![0.0; batch * n_frames * d];
        let gelu = Epilogue {
            gelu: true,
            residual: None,
        };
        rt.matmul(
            "encoder.conv1",
            &patches,
            batch * n_frames,
            &self.conv1,
            gelu,
            &mut h1,
        )?;
        drop(patches);
        // conv2: kernel 3, stride 2, padding 1, then GELU.
        let patches: Vec<f32> = h1
            .chunks(n_frames * d)
            .flat_map(|h| im2col(n_frames, n_ctx, 2, d, |t, c| h[t * d + c]))
            .collect();
        drop(h1);
        let rows = batch * n_ctx;
        let mut x = vec![0.0; rows * d];
        let gelu = Epilogue {
            gelu: true,
            residual: None,
        };
        rt.matmul("encoder.conv2", &patches, rows, &self.conv2, gelu, &mut x)?;
        drop(patches);
        for window in x.chunks_mut(n_ctx * d) {
            for (xi, pi) in window.iter_mut().zip(&self.positions) {
                *xi += pi;
            }
        }

        let mut scratch = BlockScratch::new(rows, d);
        for (i, block) in self.blocks.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(ModelError::Cancelled);
            }
            let op = format!("encoder.{i}");
            block.self_attention_full(rt, &op, dims.n_audio_head, &mut x, n_ctx, &mut scratch)?;
            block.mlp(rt, &op, &mut x, rows, &mut scratch)?;
        }
        let mut out = vec![0.0; rows * d];
        layernorm(rt, "encoder.ln_post", &x, rows, &self.ln_post, &mut out)?;
        Ok(out.chunks(n_ctx * d).map(<[f32]>::to_vec).collect())
    }
}

/// Builds `[out_len, channels * 3]` patches of a kernel-3, padding-1 convolution with `stride`
/// over an input of `in_len` time steps; `at(t, c)` reads the input.
fn im2col(
    in_len: usize,
    out_len: usize,
    stride: usize,
    channels: usize,
    at: impl Fn(usize, usize) -> f32,
) -> Vec<f32> {
    let mut p = vec![0.0; out_len * channels * 3];
    for o in 0..out_len {
        let row = &mut p[o * channels * 3..(o + 1) * channels * 3];
        for j in 0..3 {
            // Input index o*stride + j - 1 (padding 1).
            let Some(t) = (o * stride + j).checked_sub(1) else {
                continue;
            };
            if t >= in_len {
                continue;
            }
            for c in 0..channels {
                row[c * 3 + j] = at(t, c);
            }
        }
    }
    p
}

/// Buffers reused across blocks of one forward pass.
struct BlockScratch {
    ln: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    tmp: Vec<f32>,
}

impl BlockScratch {
    fn new(rows: usize, d: usize) -> Self {
        let z = || vec![0.0; rows * d];
        BlockScratch {
            ln: z(),
            q: z(),
            k: z(),
            v: z(),
            attn: z(),
            tmp: z(),
        }
    }

    fn ensure(&mut self, rows: usize, d: usize) {
        for b in [
            &mut self.ln,
            &mut self.q,
            &mut self.k,
            &mut self.v,
            &mut self.attn,
            &mut self.tmp,
        ] {
            if b.len() < rows * d {
                b.resize(rows * d, 0.0);
            }
        }
    }
}

impl Block {
    /// `x = x + attn(ln(x))` with full (non-causal) self-attention within each `window` rows
    /// of `x`: the encoder's blocks over a batch of windows.
    fn self_attention_full(
        &self,
        rt: &Runtime,
        op: &str,
        heads: usize,
        x: &mut [f32],
        window: usize,
        s: &mut BlockScratch,
    ) -> Result<(), ModelError> {
        let d = self.attn_ln.gamma.len();
        let n = x.len();
        let rows = n / d;
        layernorm(
            rt,
            &format!("{op}.attn_ln"),
            x,
            rows,
            &self.attn_ln,
            &mut s.ln[..n],
        )?;
        let none = Epilogue::default;
        rt.matmul(
            &format!("{op}.attn.q"),
            &s.ln[..n],
            rows,
            &self.attn.query,
            none(),
            &mut s.q[..n],
        )?;
        rt.matmul(
            &format!("{op}.attn.k"),
            &s.ln[..n],
            rows,
            &self.attn.key,
            none(),
            &mut s.k[..n],
        )?;
        rt.matmul(
            &format!("{op}.attn.v"),
            &s.ln[..n],
            rows,
            &self.attn.value,
            none(),
            &mut s.v[..n],
        )?;
        let p = AttentionParams {
            heads,
            head_dim: d / heads,
            q_len: window,
            kv_len: window,
            causal_offset: None,
        };
        for w in (0..n).step_by(window * d) {
            let r = w..w + window * d;
            rt.attention(
                &format!("{op}.attn"),
                &s.q[r.clone()],
                &s.k[r.clone()],
                &s.v[r.clone()],
                p,
                &mut s.attn[r],
            )?;
        }
        s.tmp[..n].copy_from_slice(x);
        let res = Epilogue {
            gelu: false,
            residual: Some(&s.tmp[..n]),
        };
        rt.matmul(
            &format!("{op}.attn.out"),
            &s.attn[..n],
            rows,
            &self.attn.out,
            res,
            x,
        )?;
        Ok(())
    }

    /// `x = x + mlp(ln(x))`, the MLP run as one fused FFN kernel.
    fn mlp(
        &self,
        rt: &Runtime,
        op: &str,
        x: &mut [f32],
        rows: usize,
        s: &mut BlockScratch,
    ) -> Result<(), ModelError> {
        let n = x.len();
        layernorm(
            rt,
            &format!("{op}.mlp_ln"),
            x,
            rows,
            &self.mlp_ln,
            &mut s.ln[..n],
        )?;
        s.tmp[..n].copy_from_slice(x);
        rt.ffn(
            &format!("{op}.mlp"),
            &s.ln[..n],
            rows,
            &self.fc1,
            &self.fc2,
            &s.tmp[..n],
            x,
        )?;
        Ok(())
    }
}

/// Cross-attention keys and values of one audio window, every layer (`[n_audio_ctx, d]` each):
/// computed once per window and shared by every sequence (beam) decoding it. Stored as the
/// runtime chooses ([`Runtime::kv_tensor`]: f16 with the int8 compute type).
pub struct CrossKv {
    k: Vec<KvTensor>,
    v: Vec<KvTensor>,
}

/// The decoder's state for a batch of sequences: self-attention keys and values of every decoded
/// position, per layer and sequence, and each sequence's window of cross-attention keys and
/// values. Sequences of different windows (of one recording, of several files, or of unrelated
/// transcriptions) share one [`Decoder::forward`] call; a window's beams share its [`CrossKv`].
pub struct KvCache {
    /// `[layer][sequence]` → `[positions, d]` keys and values, grown as positions fill (most
    /// windows use a fraction of the text context; concurrent transcriptions hold many).
    self_k: Vec<Vec<Vec<f32>>>,
    self_v: Vec<Vec<Vec<f32>>>,
    /// Each sequence's window.
    cross: Vec<Arc<CrossKv>>,
    /// Positions filled, per sequence.
    lens: Vec<usize>,
    /// Rows a self-attention buffer may hold (the text context).
    capacity_rows: usize,
    /// Entries per position (the decoder width).
    row_width: usize,
    n_audio_ctx: usize,
}

impl KvCache {
    /// An empty cache with one sequence per entry of `windows` (repeat an entry for beams).
    pub fn new(dims: &ModelDims, windows: Vec<Arc<CrossKv>>) -> KvCache {
        let layers = dims.n_text_layer;
        let empty = || vec![vec![Vec::new(); windows.len()]; layers];
        KvCache {
            self_k: empty(),
            self_v: empty(),
            lens: vec![0; windows.len()],
            cross: windows,
            capacity_rows: dims.n_text_ctx,
            row_width: dims.n_text_state,
            n_audio_ctx: dims.n_audio_ctx,
        }
    }

    /// Number of sequences (beams) held.
    pub fn batch(&self) -> usize {
        self.cross.len()
    }

    /// Positions filled in sequence `seq`.
    pub fn seq_len(&self, seq: usize) -> usize {
        self.lens[seq]
    }

    /// Cross-attention keys (`[n_audio_ctx, d]`) of sequence `seq`'s window at decoder `layer`
    /// (converted to f32 if stored as f16).
    pub fn cross_keys(&self, seq: usize, layer: usize) -> Cow<'_, [f32]> {
        self.cross[seq].k[layer].to_f32()
    }

    /// Appends the sequences of `other` (same model) after this cache's: how separately
    /// started decodings join one batch.
    pub fn append(&mut self, other: KvCache) {
        assert_eq!(
            (self.capacity_rows, self.n_audio_ctx),
            (other.capacity_rows, other.n_audio_ctx),
            "caches of different models"
        );
        for (mine, theirs) in self.self_k.iter_mut().zip(other.self_k) {
            mine.extend(theirs);
        }
        for (mine, theirs) in self.self_v.iter_mut().zip(other.self_v) {
            mine.extend(theirs);
        }
        self.cross.extend(other.cross);
        self.lens.extend(other.lens);
    }

    /// Splits the sequences `at..` off into a cache of their own (the inverse of
    /// [`KvCache::append`]).
    pub fn split_off(&mut self, at: usize) -> KvCache {
        KvCache {
            self_k: self.self_k.iter_mut().map(|l| l.split_off(at)).collect(),
            self_v: self.self_v.iter_mut().map(|l| l.split_off(at)).collect(),
            cross: self.cross.split_off(at),
            lens: self.lens.split_off(at),
            capacity_rows: self.capacity_rows,
            row_width: self.row_width,
            n_audio_ctx: self.n_audio_ctx,
        }
    }

    /// Reorders and resizes the batch: sequence `i` of the result is a copy of `sources[i]`.
    /// Used by beam search when beams are re-ranked, and to drop finished sequences. Only the
    /// filled positions are copied, and a source used once is moved rather than copied.
    pub fn reorder(&mut self, sources: &[usize]) {
        let mut remaining = vec![0usize; self.batch()];
        for &s in sources {
            remaining[s] += 1;
        }
        let lens = &self.lens;
        for layer in self.self_k.iter_mut().chain(self.self_v.iter_mut()) {
            let mut old: Vec<Vec<f32>> = std::mem::take(layer);
            // Buffers of dropped sequences hold the copies: no allocation, and only the filled
            // rows are written (rows past a sequence's length are never read).
            let mut spare: Vec<Vec<f32>> = (0..old.len())
                .filter(|&s| remaining[s] == 0)
                .map(|s| std::mem::take(&mut old[s]))
                .collect();
            let mut left = remaining.clone();
            *layer = sources
                .iter()
                .map(|&s| {
                    left[s] -= 1;
                    if left[s] == 0 {
                        std::mem::take(&mut old[s])
                    } else {
                        let filled = lens[s] * self.row_width;
                        let mut v = spare.pop().unwrap_or_default();
                        v.clear();
                        v.extend_from_slice(&old[s][..filled]);
                        v
                    }
                })
                .collect();
        }
        self.cross = sources.iter().map(|&s| self.cross[s].clone()).collect();
        self.lens = sources.iter().map(|&s| self.lens[s]).collect();
    }
}

impl Decoder {
    /// The cross-attention keys and values of every layer for one window of encoder output.
    pub fn cross_kv(
        &self,
        rt: &Runtime,
        dims: &ModelDims,
        audio: &[f32],
    ) -> Result<Arc<CrossKv>, ModelError> {
        let (d, n_audio) = (dims.n_text_state, dims.n_audio_ctx);
        let mut cross_k = Vec::with_capacity(self.blocks.len());
        let mut cross_v = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            let (_, cross) = block
                .cross
                .as_ref()
                .expect("decoder blocks have cross-attention");
            let mut k = vec![0.0; n_audio * d];
            let mut v = vec![0.0; n_audio * d];
            rt.matmul(
                &format!("decoder.{i}.cross.k"),
                audio,
                n_audio,
                &cross.key,
                Epilogue::default(),
                &mut k,
            )?;
            rt.matmul(
                &format!("decoder.{i}.cross.v"),
                audio,
                n_audio,
                &cross.value,
                Epilogue::default(),
                &mut v,
            )?;
            cross_k.push(rt.kv_tensor(k, d));
            cross_v.push(rt.kv_tensor(v, d));
        }
        Ok(Arc::new(CrossKv {
            k: cross_k,
            v: cross_v,
        }))
    }

    /// Computes the cross-attention keys and values of every layer for one window of encoder
    /// output and returns an empty cache for `batch` sequences.
    pub fn new_cache(
        &self,
        rt: &Runtime,
        dims: &ModelDims,
        audio: &[f32],
        batch: usize,
    ) -> Result<KvCache, ModelError> {
        let cross = self.cross_kv(rt, dims, audio)?;
        Ok(KvCache::new(dims, vec![cross; batch]))
    }

    /// Runs `tokens` (`[batch][q_len]`, every sequence the same length) through the decoder, each
    /// sequence at its next positions (`cache.seq_len(b)..+q_len`: sequences may be at different
    /// positions), appends their keys and values to the cache, and returns the logits of the rows
    /// selected by `logit_rows` (indices into 0..q_len) of every sequence:
    /// `[batch][logit_rows.len()][n_vocab]`, flattened.
    pub fn forward(
        &self,
        rt: &Runtime,
        dims: &ModelDims,
        tokens: &[Vec<u32>],
        cache: &mut KvCache,
        logit_rows: &[usize],
    ) -> Result<Vec<f32>, ModelError> {
        self.forward_collect(rt, dims, tokens, cache, logit_rows, None)
    }

    /// [`Decoder::forward`], also recording the pre-softmax cross-attention logits of the heads
    /// `qk` asks for (word timestamps). They are computed here on the CPU from the cross queries
    /// and cached keys, so the runtime's attention kernel keeps returning outputs only.
    pub fn forward_collect(
        &self,
        rt: &Runtime,
        dims: &ModelDims,
        tokens: &[Vec<u32>],
        cache: &mut KvCache,
        logit_rows: &[usize],
        qk: Option<&mut CrossQk>,
    ) -> Result<Vec<f32>, ModelError> {
        // One hand-over to the runtime's pool for the whole step: its kernels then run as
        // direct calls on a worker whose peer is still spinning, instead of each waking the
        // pool from outside (dozens of small products per token).
        rt.install(|| self.forward_on_pool(rt, dims, tokens, cache, logit_rows, qk))
    }

    fn forward_on_pool(
        &self,
        rt: &Runtime,
        dims: &ModelDims,
        tokens: &[Vec<u32>],
        cache: &mut KvCache,
        logit_rows: &[usize],
        mut qk: Option<&mut CrossQk>,
    ) -> Result<Vec<f32>, ModelError> {
        let batch = tokens.len();
        assert_eq!(
            batch,
            cache.batch(),
            "token batch must match the cache's batch"
        );
        let q_len = tokens[0].len();
        let (d, heads) = (dims.n_text_state, dims.n_text_head);
        if let Some(&longest) = cache.lens.iter().max() {
            if longest + q_len > dims.n_text_ctx {
                return Err(ModelError::ContextOverflow {
                    len: longest + q_len,
                    max: dims.n_text_ctx,
                });
            }
        }
        let rows = batch * q_len;
        let n = rows * d;

        // Token embedding plus learned position embedding.
        let mut x = vec![0.0; n];
        for (b, seq) in tokens.iter().enumerate() {
            let offset = cache.lens[b];
            assert_eq!(
                seq.len(),
                q_len,
                "every sequence of a batch has the same length"
            );
            for (t, &tok) in seq.iter().enumerate() {
                let row = &mut x[(b * q_len + t) * d..(b * q_len + t + 1) * d];
                // Token embedding plus position (the sum in this order, as before: e + p).
                row.fill(0.0);
                self.token_embedding
                    .add_row(&self.lm_head, tok as usize, row);
                let pos = &self.positions[(offset + t) * d..(offset + t + 1) * d];
                for (r, p) in row.iter_mut().zip(pos) {
                    *r += p;
                }
            }
        }

        let mut s = BlockScratch::new(rows, d);
        s.ensure(rows, d);
        let hd = d / heads;
        for (i, block) in self.blocks.iter().enumerate() {
            let op = format!("decoder.{i}");
            // Causal self-attention over the cache plus the new positions.
            layernorm(
                rt,
                &format!("{op}.attn_ln"),
                &x,
                rows,
                &block.attn_ln,
                &mut s.ln[..n],
            )?;
            rt.matmul(
                &format!("{op}.attn.q"),
                &s.ln[..n],
                rows,
                &block.attn.query,
                Epilogue::default(),
                &mut s.q[..n],
            )?;
            rt.matmul(
                &format!("{op}.attn.k"),
                &s.ln[..n],
                rows,
                &block.attn.key,
                Epilogue::default(),
                &mut s.k[..n],
            )?;
            rt.matmul(
                &format!("{op}.attn.v"),
                &s.ln[..n],
                rows,
                &block.attn.value,
                Epilogue::default(),
                &mut s.v[..n],
            )?;
            for b in 0..batch {
                let offset = cache.lens[b];
                let new = b * q_len * d..(b + 1) * q_len * d;
                // Positions past `offset` are stale (a reordered beam's) or absent: replaced.
                for (buf, src) in [
                    (&mut cache.self_k[i][b], &s.k),
                    (&mut cache.self_v[i][b], &s.v),
                ] {
                    buf.truncate(offset * d);
                    buf.extend_from_slice(&src[new.clone()]);
                }
            }
            // Every sequence in one call: each over its own cache.
            let seqs: Vec<SeqKv<'_>> = (0..batch)
                .map(|b| SeqKv {
                    k: &cache.self_k[i][b],
                    v: &cache.self_v[i][b],
                    kv_len: cache.lens[b] + q_len,
                    causal_offset: Some(cache.lens[b]),
                })
                .collect();
            rt.attention_batch(
                &format!("{op}.attn"),
                &s.q[..n],
                &seqs,
                heads,
                hd,
                q_len,
                &mut s.attn[..n],
            )?;
            s.tmp[..n].copy_from_slice(&x);
            let res = Epilogue {
                gelu: false,
                residual: Some(&s.tmp[..n]),
            };
            rt.matmul(
                &format!("{op}.attn.out"),
                &s.attn[..n],
                rows,
                &block.attn.out,
                res,
                &mut x,
            )?;

            // Cross-attention: the rows of each run of sequences on one window attend to its audio
            // features in one call.
            let (cross_ln, cross) = block
                .cross
                .as_ref()
                .expect("decoder blocks have cross-attention");
            layernorm(
                rt,
                &format!("{op}.cross_ln"),
                &x,
                rows,
                cross_ln,
                &mut s.ln[..n],
            )?;
            rt.matmul(
                &format!("{op}.cross.q"),
                &s.ln[..n],
                rows,
                &cross.query,
                Epilogue::default(),
                &mut s.q[..n],
            )?;
            if let Some(qk) = qk.as_deref_mut() {
                // Word timestamps align one sequence at a time: the first of the batch.
                qk.record(i, &s.q[..q_len * d], q_len, &cache.cross_keys(0, i), heads);
            }
            let mut first = 0;
            while first < batch {
                let window = &cache.cross[first];
                let end = (first..batch)
                    .find(|&b| !Arc::ptr_eq(&cache.cross[b], window))
                    .unwrap_or(batch);
                let p = AttentionParams {
                    heads,
                    head_dim: hd,
                    q_len: (end - first) * q_len,
                    kv_len: cache.n_audio_ctx,
                    causal_offset: None,
                };
                let r = first * q_len * d..end * q_len * d;
                rt.attention_kv(
                    &format!("{op}.cross"),
                    &s.q[r.clone()],
                    &window.k[i],
                    &window.v[i],
                    p,
                    &mut s.attn[r],
                )?;
                first = end;
            }
            s.tmp[..n].copy_from_slice(&x);
            let res = Epilogue {
                gelu: false,
                residual: Some(&s.tmp[..n]),
            };
            rt.matmul(
                &format!("{op}.cross.out"),
                &s.attn[..n],
                rows,
                &cross.out,
                res,
                &mut x,
            )?;

            block.mlp(rt, &op, &mut x, rows, &mut s)?;
        }
        for len in &mut cache.lens {
            *len += q_len;
        }

        // Final LayerNorm and logits, only for the rows the caller asked for.
        let picked: Vec<f32> = (0..batch)
            .flat_map(|b| logit_rows.iter().map(move |&r| b * q_len + r))
            .flat_map(|row| x[row * d..(row + 1) * d].iter().copied())
            .collect();
        let out_rows = batch * logit_rows.len();
        let mut normed = vec![0.0; out_rows * d];
        layernorm(rt, "decoder.ln", &picked, out_rows, &self.ln, &mut normed)?;
        let mut logits = vec![0.0; out_rows * dims.n_vocab];
        rt.lm_head(
            "decoder.lm_head",
            &normed,
            out_rows,
            &self.lm_head,
            None,
            &mut logits,
        )?;
        Ok(logits)
    }
}
