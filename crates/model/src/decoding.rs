//! Decoding one 30-second window: greedy, beam search and temperature sampling, with Whisper's
//! logit filters (blank and non-speech suppression, timestamp rules) and temperature fallback.
//!
//! Mirrors `whisper/decoding.py` of openai-whisper (`DecodingTask`, `GreedyDecoder`,
//! `BeamSearchDecoder`, `SuppressBlank`, `SuppressTokens`, `ApplyTimestampRules`,
//! `MaximumLikelihoodRanker`) and the fallback loop of `whisper/transcribe.py`.

use std::collections::HashMap;
use std::io::Write;

use npu_runtime::{math, Runtime};
use rand::{rngs::StdRng, Rng};

use crate::batch::BatchWindow;
use crate::cancel::CancelToken;
use crate::model::{ModelError, Network};
pub use crate::options::{Task, TranscribeOptions};
use crate::step_batcher::StepBatcher;
use crate::tokenizer::WhisperTokenizer;

/// The result of decoding one window.
#[derive(Clone, Debug)]
pub struct DecodeResult {
    /// Sampled tokens (text and timestamps), without the end-of-text token.
    pub tokens: Vec<u32>,
    /// Sum of the log-probabilities of the sampled tokens (end-of-text included).
    pub sum_logprob: f32,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    pub temperature: f32,
    pub compression_ratio: f32,
    pub text: String,
}

/// The special tokens and token sets a decoder needs, resolved once per model, and the token
/// that cancels the decoding.
#[derive(Clone)]
pub struct DecoderContext<'a> {
    pub model: &'a Network,
    pub rt: &'a Runtime,
    pub tokenizer: &'a WhisperTokenizer,
    suppress: Vec<u32>,
    blank: Vec<u32>,
    cancel: CancelToken,
    /// Merges this context's decoding steps with concurrent transcriptions' (`None`: alone).
    pub(crate) steps: Option<&'a StepBatcher>,
}

impl<'a> DecoderContext<'a> {
    pub fn new(model: &'a Network, rt: &'a Runtime, tokenizer: &'a WhisperTokenizer) -> Self {
        let t = tokenizer;
        // Whisper's default `suppress_tokens="-1"`: non-speech symbols plus the task and
        // start-of-* tokens that must never be sampled.
        let mut suppress = t.non_speech_tokens();
        suppress.extend([
            t.transcribe(),
            t.translate(),
            t.sot(),
            t.sot_prev(),
            t.sot_lm(),
        ]);
        suppress.push(t.no_speech());
        suppress.retain(|&id| (id as usize) < model.dims.n_vocab);
        suppress.sort_unstable();
        suppress.dedup();
        let mut blank = t.encode(" ");
        blank.push(t.eot());
        DecoderContext {
            model,
            rt,
            tokenizer,
            suppress,
            blank,
            cancel: CancelToken::new(),
            steps: None,
        }
    }

    /// The same context, stopping with [`ModelError::Cancelled`] once `cancel` is cancelled
    /// (checked before every decoding step).
    /// Shares this context's decoding steps with the other contexts of `steps`.
    pub fn with_step_batcher(mut self, steps: &'a StepBatcher) -> Self {
        self.steps = Some(steps);
        self
    }

    pub fn with_cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// The token that cancels this context's work.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// `Err(Cancelled)` once the context's token is cancelled.
    pub fn check_cancelled(&self) -> Result<(), ModelError> {
        if self.cancel.is_cancelled() {
            Err(ModelError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// The start-of-transcript sequence for a language and task (`[sot]` on English-only models).
    pub fn sot_sequence(&self, language: Option<&str>, task: Task) -> Vec<u32> {
        let lang = language.and_then(|l| self.tokenizer.language_token(l));
        self.tokenizer.sot_sequence(lang, task == Task::Translate)
    }

    /// Detects the spoken language of a window of audio features: the most likely language token
    /// after `<|startoftranscript|>`. Returns the code and its probability.
    pub fn detect_language(&self, audio: &[f32]) -> Result<(String, f32), ModelError> {
        let t = self.tokenizer;
        let dims = &self.model.dims;
        let mut cache = self.model.decoder.new_cache(self.rt, dims, audio, 1)?;
        let logits =
            self.model
                .decoder
                .forward(self.rt, dims, &[vec![t.sot()]], &mut cache, &[0])?;
        let langs = t.languages();
        let max = langs
            .iter()
            .map(|(_, id)| logits[*id as usize])
            .fold(f32::NEG_INFINITY, f32::max);
        let total: f32 = langs
            .iter()
            .map(|(_, id)| (logits[*id as usize] - max).exp())
            .sum();
        let (code, id) = langs
            .iter()
            .max_by(|a, b| logits[a.1 as usize].total_cmp(&logits[b.1 as usize]))
            .cloned()
            .unwrap_or_else(|| ("en".to_string(), 0));
        Ok((code, (logits[id as usize] - max).exp() / total))
    }

    /// Decodes one window, trying each temperature of `opts` until the result passes the
    /// compression-ratio and log-probability thresholds (`decode_with_fallback` in Whisper). When
    /// every temperature fails, the likeliest result that is not too repetitive is kept.
    pub fn decode_with_fallback(
        &self,
        audio: &[f32],
        prompt: &[u32],
        sot_sequence: &[u32],
        opts: &TranscribeOptions,
    ) -> Result<DecodeResult, ModelError> {
        let window = self.window(audio, prompt, sot_sequence)?;
        Ok(self
            .decode_batch_with_fallback(std::slice::from_ref(&window), opts)?
            .remove(0))
    }

    /// Decodes one window at one temperature.
    pub fn decode(
        &self,
        audio: &[f32],
        prompt: &[u32],
        sot_sequence: &[u32],
        opts: &TranscribeOptions,
        temperature: f32,
    ) -> Result<DecodeResult, ModelError> {
        let window = self.window(audio, prompt, sot_sequence)?;
        Ok(self
            .decode_batch(std::slice::from_ref(&window), opts, temperature)?
            .remove(0))
    }

    /// One window to decode: the cross-attention keys and values of its encoder output
    /// (computed once for every temperature tried), its prompt and SOT sequence.
    fn window(
        &self,
        audio: &[f32],
        prompt: &[u32],
        sot_sequence: &[u32],
    ) -> Result<BatchWindow, ModelError> {
        Ok(BatchWindow {
            cross: self
                .model
                .decoder
                .cross_kv(self.rt, &self.model.dims, audio)?,
            prompt: prompt.to_vec(),
            sot_sequence: sot_sequence.to_vec(),
        })
    }

    /// The result of a finished search: its candidates cut at end-of-text, ranked
    /// (`MaximumLikelihoodRanker`), the best one with its scores.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn best_candidate(
        &self,
        search: Search,
        tokens: Vec<Vec<u32>>,
        sum_logprobs: Vec<f32>,
        sample_begin: usize,
        no_speech_prob: f32,
        opts: &TranscribeOptions,
        temperature: f32,
    ) -> DecodeResult {
        let t = self.tokenizer;
        let candidates: Vec<(Vec<u32>, f32)> = match search {
            Search::Beam(b) => b.finalize(&tokens, &sum_logprobs),
            Search::Sample(_) => tokens.into_iter().zip(sum_logprobs).collect(),
        };
        let candidates: Vec<(Vec<u32>, f32)> = candidates
            .into_iter()
            .map(|(seq, lp)| {
                let sampled = &seq[sample_begin..];
                let end = sampled
                    .iter()
                    .position(|&x| x == t.eot())
                    .unwrap_or(sampled.len());
                (sampled[..end].to_vec(), lp)
            })
            .collect();
        let (tokens, sum_logprob) = candidates[rank(&candidates, opts.length_penalty)].clone();
        let text = t.decode(&tokens);
        DecodeResult {
            avg_logprob: sum_logprob / (tokens.len() + 1) as f32,
            compression_ratio: compression_ratio(text.trim()),
            tokens,
            sum_logprob,
            no_speech_prob,
            temperature,
            text,
        }
    }
}

/// Whether a result ends its window's fallback: it passes the compression-ratio and
/// log-probability thresholds, or the window is silence (no retry; the caller skips it).
pub(crate) fn passes(opts: &TranscribeOptions, r: &DecodeResult) -> bool {
    let too_repetitive = opts
        .compression_ratio_threshold
        .is_some_and(|th| r.compression_ratio > th);
    let too_unlikely = opts.logprob_threshold.is_some_and(|th| r.avg_logprob < th);
    let silent = opts
        .no_speech_threshold
        .is_some_and(|th| r.no_speech_prob > th)
        && too_unlikely;
    silent || (!too_repetitive && !too_unlikely)
}

/// When every temperature failed: the likeliest result that is not too repetitive (any result
/// if all are), marked with the last temperature tried, which decides whether the next window
/// is conditioned on this one.
pub(crate) fn best_of_failed(
    opts: &TranscribeOptions,
    tried: Vec<DecodeResult>,
) -> Result<DecodeResult, ModelError> {
    let last_temperature = tried.last().map_or(0.0, |r| r.temperature);
    let (not_repetitive, repetitive): (Vec<_>, Vec<_>) = tried.into_iter().partition(|r| {
        !opts
            .compression_ratio_threshold
            .is_some_and(|th| r.compression_ratio > th)
    });
    let pool = if not_repetitive.is_empty() {
        repetitive
    } else {
        not_repetitive
    };
    let mut best = pool
        .into_iter()
        .max_by(|a, b| a.avg_logprob.total_cmp(&b.avg_logprob))
        .ok_or(ModelError::NoTemperatures)?;
    best.temperature = last_temperature;
    Ok(best)
}

/// Picks the best candidate by length-normalised log-probability (`MaximumLikelihoodRanker`).
fn rank(candidates: &[(Vec<u32>, f32)], length_penalty: Option<f32>) -> usize {
    let score = |(tokens, lp): &(Vec<u32>, f32)| {
        let len = tokens.len() as f32;
        let penalty = match length_penalty {
            None => len,
            Some(a) => ((5.0 + len) / 6.0).powf(a),
        };
        lp / penalty.max(f32::MIN_POSITIVE)
    };
    (0..candidates.len())
        .max_by(|&a, &b| score(&candidates[a]).total_cmp(&score(&candidates[b])))
        .unwrap_or(0)
}

/// Ratio of the text's UTF-8 length to its zlib-compressed length; high for repetitive loops.
pub fn compression_ratio(text: &str) -> f32 {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return 0.0;
    }
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("writing to memory");
    let compressed = enc.finish().expect("writing to memory");
    bytes.len() as f32 / compressed.len() as f32
}

pub(crate) fn softmax_at(logits: &[f32], index: usize) -> f32 {
    (logits[index] - math::log_sum_exp(logits)).exp()
}

/// Whisper's logit filters, applied to every row before a token is chosen.
pub(crate) struct LogitFilters<'c, 'a> {
    pub(crate) ctx: &'c DecoderContext<'a>,
    pub(crate) sample_begin: usize,
    pub(crate) suppress_blank: bool,
    pub(crate) timestamps: bool,
    pub(crate) max_initial_timestamp_index: u32,
}

impl LogitFilters<'_, '_> {
    pub(crate) fn apply(&self, tokens: &[u32], logits: &mut [f32]) {
        let t = self.ctx.tokenizer;
        let at_begin = tokens.len() == self.sample_begin;
        // SuppressBlank: never start with a space or end-of-text.
        if self.suppress_blank && at_begin {
            for &id in &self.ctx.blank {
                logits[id as usize] = f32::NEG_INFINITY;
            }
        }
        // SuppressTokens.
        for &id in &self.ctx.suppress {
            logits[id as usize] = f32::NEG_INFINITY;
        }
        if self.timestamps {
            self.apply_timestamp_rules(&tokens[self.sample_begin..], at_begin, logits, t);
        }
    }

    /// `ApplyTimestampRules`: timestamps come in pairs (except before end-of-text), never
    /// decrease, the first token is a timestamp no later than `max_initial_timestamp`, and a
    /// timestamp is forced when timestamps together are likelier than any text token.
    fn apply_timestamp_rules(
        &self,
        sampled: &[u32],
        at_begin: bool,
        logits: &mut [f32],
        t: &WhisperTokenizer,
    ) {
        let ts_begin = t.timestamp_begin() as usize;
        let eot = t.eot() as usize;
        logits[t.no_timestamps() as usize] = f32::NEG_INFINITY;

        let is_ts = |x: u32| x as usize >= ts_begin;
        let last_was_ts = sampled.last().is_some_and(|&x| is_ts(x));
        let penultimate_was_ts = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
        if last_was_ts {
            if penultimate_was_ts {
                logits[ts_begin..].fill(f32::NEG_INFINITY);
            } else {
                logits[..eot].fill(f32::NEG_INFINITY);
            }
        }
        if let Some(&last_ts) = sampled.iter().rev().find(|&&x| is_ts(x)) {
            // Forbid going back in time, and force each segment to have a nonzero length.
            let limit = if last_was_ts && !penultimate_was_ts {
                last_ts
            } else {
                last_ts + 1
            };
            let limit = (limit as usize).min(logits.len());
            logits[ts_begin..limit].fill(f32::NEG_INFINITY);
        }
        if at_begin {
            logits[..ts_begin].fill(f32::NEG_INFINITY);
            let last_allowed = ts_begin + self.max_initial_timestamp_index as usize;
            if last_allowed + 1 < logits.len() {
                logits[last_allowed + 1..].fill(f32::NEG_INFINITY);
            }
        }
        // If the timestamps together are likelier than any single text token, sample a timestamp
        // (compared as log-probabilities in Whisper; the common normaliser cancels).
        let ts_lse = math::log_sum_exp(&logits[ts_begin..]);
        let text_max = math::max(&logits[..ts_begin]);
        if ts_lse != f32::NEG_INFINITY && ts_lse > text_max {
            logits[..ts_begin].fill(f32::NEG_INFINITY);
        }
    }
}

pub(crate) enum Search {
    Beam(BeamSearch),
    Sample(Box<Sampler>),
}

/// Greedy decoding (temperature 0) or sampling from the tempered distribution.
pub(crate) struct Sampler {
    pub(crate) temperature: f32,
    pub(crate) rng: StdRng,
    pub(crate) eot: u32,
}

impl Sampler {
    /// Appends one token to every sequence; returns whether all have ended.
    pub(crate) fn update(
        &mut self,
        tokens: &mut [Vec<u32>],
        sum_logprobs: &mut [f32],
        logits: &[f32],
        v: usize,
    ) -> bool {
        for (k, row) in logits.chunks(v).enumerate() {
            let seq = &mut tokens[k];
            if seq.last() == Some(&self.eot) {
                seq.push(self.eot);
                continue;
            }
            let next = if self.temperature == 0.0 {
                argmax(row)
            } else {
                self.sample(row)
            };
            sum_logprobs[k] += row[next] - math::log_sum_exp(row);
            seq.push(next as u32);
        }
        tokens.iter().all(|seq| seq.last() == Some(&self.eot))
    }

    fn sample(&mut self, row: &[f32]) -> usize {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f32> = row
            .iter()
            .map(|&l| ((l - max) / self.temperature).exp())
            .collect();
        let total: f32 = weights.iter().sum();
        let mut r = self.rng.random::<f32>() * total;
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        argmax(row)
    }
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}

/// Beam search (`BeamSearchDecoder`): keeps the `beam_size` likeliest unfinished sequences and
/// collects finished ones until `beam_size × patience` have ended.
pub(crate) struct BeamSearch {
    beam_size: usize,
    max_candidates: usize,
    eot: u32,
    finished: Vec<(Vec<u32>, f32)>,
}

impl BeamSearch {
    pub(crate) fn new(beam_size: usize, patience: f32, eot: u32) -> Self {
        let max_candidates = ((beam_size as f32 * patience).round() as usize).max(1);
        BeamSearch {
            beam_size,
            max_candidates,
            eot,
            finished: Vec::new(),
        }
    }

    /// Extends every beam by its best tokens, keeps the best `beam_size` unfinished sequences
    /// and returns, for each new beam, the index of the beam it came from.
    pub(crate) fn update(
        &mut self,
        tokens: &mut Vec<Vec<u32>>,
        sum_logprobs: &mut Vec<f32>,
        logits: &[f32],
        v: usize,
    ) -> Vec<usize> {
        // Candidates keyed by their full sequence, so identical beams (the first step) merge.
        let mut scores: HashMap<Vec<u32>, (f32, usize)> = HashMap::new();
        for (j, row) in logits.chunks(v).enumerate() {
            let lse = math::log_sum_exp(row);
            for tok in top_k(row, self.beam_size + 1) {
                let mut seq = tokens[j].clone();
                seq.push(tok as u32);
                let score = sum_logprobs[j] + (row[tok] - lse);
                scores.entry(seq).or_insert((score, j));
            }
        }
        let mut ranked: Vec<(Vec<u32>, (f32, usize))> = scores.into_iter().collect();
        // Sort by score, ties broken by sequence for determinism.
        ranked.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));

        let mut next_tokens = Vec::with_capacity(self.beam_size);
        let mut next_scores = Vec::with_capacity(self.beam_size);
        let mut sources = Vec::with_capacity(self.beam_size);
        let mut newly_finished = Vec::new();
        for (seq, (score, source)) in ranked {
            if seq.last() == Some(&self.eot) {
                newly_finished.push((seq, score));
            } else {
                next_tokens.push(seq);
                next_scores.push(score);
                sources.push(source);
                if next_tokens.len() == self.beam_size {
                    break;
                }
            }
        }
        for cand in newly_finished {
            if self.finished.len() >= self.max_candidates {
                break;
            }
            self.finished.push(cand);
        }
        *tokens = next_tokens;
        *sum_logprobs = next_scores;
        sources
    }

    pub(crate) fn is_done(&self) -> bool {
        self.finished.len() >= self.max_candidates
    }

    /// Finished sequences, topped up with the best unfinished beams when too few ended.
    pub(crate) fn finalize(
        mut self,
        tokens: &[Vec<u32>],
        sum_logprobs: &[f32],
    ) -> Vec<(Vec<u32>, f32)> {
        if self.finished.len() < self.beam_size {
            let mut order: Vec<usize> = (0..tokens.len()).collect();
            order.sort_by(|&a, &b| sum_logprobs[b].total_cmp(&sum_logprobs[a]));
            for k in order {
                let mut seq = tokens[k].clone();
                seq.push(self.eot);
                self.finished.push((seq, sum_logprobs[k]));
                if self.finished.len() >= self.beam_size {
                    break;
                }
            }
        }
        self.finished
    }
}

/// Indices of the `k` largest values, largest first.
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut best: Vec<usize> = Vec::with_capacity(k + 1);
    for (i, &x) in values.iter().enumerate() {
        if x == f32::NEG_INFINITY {
            continue;
        }
        if best.len() < k || x > values[*best.last().unwrap()] {
            let pos = best.partition_point(|&b| values[b] >= x);
            best.insert(pos, i);
            best.truncate(k);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_and_skips_masked() {
        let v = [0.1, f32::NEG_INFINITY, 3.0, 2.0, -1.0];
        assert_eq!(top_k(&v, 2), vec![2, 3]);
        assert_eq!(top_k(&v, 10), vec![2, 3, 0, 4]);
    }

    #[test]
    fn compression_ratio_flags_repetition() {
        let normal = compression_ratio(
            "And so my fellow Americans, ask not what your country can do for you.",
        );
        let looped = compression_ratio(&"thank you ".repeat(40));
        assert!(normal < 2.4, "{normal}");
        assert!(looped > 2.4, "{looped}");
    }

    #[test]
    fn ranker_normalises_by_length() {
        let c = vec![(vec![1, 2], -2.0), (vec![1, 2, 3, 4], -3.0)];
        assert_eq!(rank(&c, None), 1); // -1.0 vs -0.75 per token
        assert_eq!(rank(&c[..1], None), 0);
    }

    #[test]
    fn beam_merges_identical_first_step_and_tracks_sources() {
        let mut b = BeamSearch::new(2, 1.0, 9);
        let mut tokens = vec![vec![0u32], vec![0u32]];
        let mut lp = vec![0.0, 0.0];
        // Two identical rows over a vocabulary of 10: best tokens 3 then 5.
        let mut row = vec![-10.0f32; 10];
        row[3] = 2.0;
        row[5] = 1.0;
        let logits = [row.clone(), row].concat();
        let sources = b.update(&mut tokens, &mut lp, &logits, 10);
        assert_eq!(tokens, vec![vec![0, 3], vec![0, 5]]);
        assert_eq!(sources, vec![0, 0]);
        assert!(lp[0] > lp[1]);
    }
}
