//! Batched decoding: the windows of one recording, of several files or of unrelated
//! transcriptions decoded together, every sequence of every window advanced by one
//! [`crate::model::Decoder::forward`] call per step, so the decoder's weights are read once per
//! step for the whole batch instead of once per window.
//!
//! Each window keeps its own search (greedy, beam or sampling), logit filters and stopping rule,
//! exactly as [`DecoderContext::decode`] runs them for a window alone; a window that finishes
//! leaves the batch and the others go on. Temperature fallback is per window: windows whose result
//! fails the thresholds are decoded again, together, at the next temperature.

use std::sync::Arc;

use rand::{rngs::StdRng, SeedableRng};

use crate::decoding::{
    best_of_failed, passes, softmax_at, BeamSearch, DecodeResult, DecoderContext, LogitFilters,
    Sampler, Search, TranscribeOptions,
};
use crate::model::{CrossKv, KvCache, ModelError};
use crate::step_batcher::StepBatcher;

/// One window to decode in a batch: its audio (as cross-attention keys and values) and the
/// tokens it starts from.
#[derive(Clone)]
pub struct BatchWindow {
    pub cross: Arc<CrossKv>,
    /// Previous text the window is conditioned on (`initial_prompt`); may be empty.
    pub prompt: Vec<u32>,
    /// `<|startoftranscript|>`, language and task.
    pub sot_sequence: Vec<u32>,
}

/// One window's search while the batch runs.
struct Lane<'c, 'a> {
    filters: LogitFilters<'c, 'a>,
    search: Search,
    tokens: Vec<Vec<u32>>,
    sum_logprobs: Vec<f32>,
    no_speech_prob: f32,
    steps: usize,
}

impl<'a> DecoderContext<'a> {
    /// [`DecoderContext::decode_with_fallback`] for every window of `windows`, decoded as one
    /// batch per temperature: a window that passes the thresholds is done, the rest are decoded
    /// again at the next temperature. Results are in the order of `windows`.
    pub fn decode_batch_with_fallback(
        &self,
        windows: &[BatchWindow],
        opts: &TranscribeOptions,
    ) -> Result<Vec<DecodeResult>, ModelError> {
        if opts.temperatures.is_empty() {
            return Err(ModelError::NoTemperatures);
        }
        let mut done: Vec<Option<DecodeResult>> = vec![None; windows.len()];
        let mut tried: Vec<Vec<DecodeResult>> = vec![Vec::new(); windows.len()];
        let mut pending: Vec<usize> = (0..windows.len()).collect();
        for &temperature in &opts.temperatures {
            if pending.is_empty() {
                break;
            }
            let batch: Vec<BatchWindow> = pending.iter().map(|&w| windows[w].clone()).collect();
            let results = self.decode_batch(&batch, opts, temperature)?;
            let mut failed = Vec::new();
            for (w, r) in pending.into_iter().zip(results) {
                if passes(opts, &r) {
                    done[w] = Some(r);
                } else {
                    tracing::debug!(
                        "temperature {temperature}: window {w} fails (avg logprob {:.3}, compression ratio {:.2}, {} tokens: {:?}); trying the next",
                        r.avg_logprob,
                        r.compression_ratio,
                        r.tokens.len(),
                        r.text
                    );
                    tried[w].push(r);
                    failed.push(w);
                }
            }
            pending = failed;
        }
        for w in pending {
            done[w] = Some(best_of_failed(opts, std::mem::take(&mut tried[w]))?);
        }
        Ok(done.into_iter().flatten().collect())
    }

    /// Decodes every window of `windows` at one temperature, as one batch: the same tokens
    /// [`DecoderContext::decode`] gives each window alone, up to the float summation order of
    /// products over more rows.
    pub fn decode_batch(
        &self,
        windows: &[BatchWindow],
        opts: &TranscribeOptions,
        temperature: f32,
    ) -> Result<Vec<DecodeResult>, ModelError> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let t = self.tokenizer;
        let dims = &self.model.dims;
        let (rt, decoder) = (self.rt, &self.model.decoder);
        let v = dims.n_vocab;
        let sample_len = dims.n_text_ctx / 2;

        // Initial tokens: previous text (at most half the context), SOT sequence, and
        // <|notimestamps|> when asked; `sot_index` is where the SOT sequence starts.
        let initial: Vec<(Vec<u32>, usize)> = windows
            .iter()
            .map(|w| {
                let mut init = Vec::new();
                if !w.prompt.is_empty() {
                    init.push(t.sot_prev());
                    let keep = (dims.n_text_ctx / 2 - 1).min(w.prompt.len());
                    init.extend_from_slice(&w.prompt[w.prompt.len() - keep..]);
                }
                let sot_index = init.len();
                init.extend_from_slice(&w.sot_sequence);
                if opts.without_timestamps {
                    init.push(t.no_timestamps());
                }
                (init, sot_index)
            })
            .collect();

        // Each window's prompt runs on its own, as in `decode` (a prompt is several rows; alone,
        // its products keep the summation order of the sequential path, and it is one step of
        // many); the windows' caches are then joined in window order.
        let mut cache: Option<KvCache> = None;
        let mut first: Vec<(f32, Vec<f32>)> = Vec::with_capacity(windows.len());
        for (w, (init, sot_index)) in windows.iter().zip(&initial) {
            let mut part = KvCache::new(dims, vec![w.cross.clone()]);
            let out = decoder.forward(
                rt,
                dims,
                std::slice::from_ref(init),
                &mut part,
                &[*sot_index, init.len() - 1],
            )?;
            let no_speech = softmax_at(&out[..v], t.no_speech() as usize);
            first.push((no_speech, out[v..].to_vec()));
            match &mut cache {
                None => cache = Some(part),
                Some(c) => c.append(part),
            }
        }
        let mut cache = cache.expect("at least one window");

        let beam = temperature == 0.0 && opts.beam_size > 1;
        let n_group = if beam {
            opts.beam_size
        } else if temperature > 0.0 {
            opts.best_of.max(1)
        } else {
            1
        };
        let mut lanes: Vec<Lane> = initial
            .iter()
            .zip(&first)
            .map(|((init, _), (no_speech_prob, _))| Lane {
                filters: LogitFilters {
                    ctx: self,
                    sample_begin: init.len(),
                    suppress_blank: opts.suppress_blank,
                    timestamps: !opts.without_timestamps,
                    max_initial_timestamp_index: (opts.max_initial_timestamp / 0.02).round() as u32,
                },
                search: if beam {
                    Search::Beam(BeamSearch::new(opts.beam_size, opts.patience, t.eot()))
                } else {
                    Search::Sample(Box::new(Sampler {
                        temperature,
                        rng: StdRng::seed_from_u64(opts.seed),
                        eot: t.eot(),
                    }))
                },
                tokens: vec![init.clone(); n_group],
                sum_logprobs: vec![0.0; n_group],
                no_speech_prob: *no_speech_prob,
                steps: 0,
            })
            .collect();
        let sources: Vec<usize> = (0..windows.len())
            .flat_map(|w| std::iter::repeat_n(w, n_group))
            .collect();
        cache.reorder(&sources);
        let mut logits: Vec<f32> = first.iter().flat_map(|f| f.1.repeat(n_group)).collect();

        // The cache holds the active lanes' sequences in lane order.
        let mut active: Vec<usize> = (0..windows.len()).collect();
        let _merging = self.steps.map(StepBatcher::enter_loop);
        while !active.is_empty() {
            self.check_cancelled()?;
            let mut keep = Vec::new();
            let mut next = Vec::new();
            let mut still = Vec::new();
            let mut row = 0;
            for &l in &active {
                let lane = &mut lanes[l];
                let n = lane.tokens.len();
                let rows = &mut logits[row * v..(row + n) * v];
                for (k, r) in rows.chunks_mut(v).enumerate() {
                    lane.filters.apply(&lane.tokens[k], r);
                }
                let (finished, local) = match &mut lane.search {
                    Search::Beam(b) => {
                        let src = b.update(&mut lane.tokens, &mut lane.sum_logprobs, rows, v);
                        (b.is_done(), src)
                    }
                    Search::Sample(s) => (
                        s.update(&mut lane.tokens, &mut lane.sum_logprobs, rows, v),
                        (0..n).collect(),
                    ),
                };
                lane.steps += 1;
                let stop = finished
                    || lane.tokens.is_empty()
                    || lane.tokens[0].len() >= dims.n_text_ctx
                    || lane.steps == sample_len;
                if !stop {
                    keep.extend(local.iter().map(|s| row + s));
                    next.extend(lane.tokens.iter().map(|seq| vec![*seq.last().unwrap()]));
                    still.push(l);
                }
                row += n;
            }
            active = still;
            if active.is_empty() {
                break;
            }
            cache.reorder(&keep);
            logits = match self.steps {
                Some(steps) => steps.step(rt, decoder, dims, &next, &mut cache)?,
                None => decoder.forward(rt, dims, &next, &mut cache, &[0])?,
            };
        }

        Ok(lanes
            .into_iter()
            .map(|lane| self.lane_result(lane, opts, temperature))
            .collect())
    }

    /// The best candidate of a finished lane (as [`DecoderContext::decode`] picks it).
    fn lane_result(&self, lane: Lane, opts: &TranscribeOptions, temperature: f32) -> DecodeResult {
        self.best_candidate(
            lane.search,
            lane.tokens,
            lane.sum_logprobs,
            lane.filters.sample_begin,
            lane.no_speech_prob,
            opts,
            temperature,
        )
    }
}
