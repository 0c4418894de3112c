//! Decoding steps of concurrent transcriptions merged into one decoder call.
//!
//! A decoding step reads every decoder weight once, whatever the number of sequences it
//! advances, so transcriptions running at the same time on one [`crate::Whisper`] (the
//! server's workers, a library user's threads) share their steps: each waits until every
//! transcription that is decoding has brought its step (or briefly, for one that is between
//! steps), and one of them runs all the steps as one [`Decoder::forward`]. A transcription
//! decoding alone pays nothing. Every sequence's result is the one it gets alone, up to the
//! summation order of products over more rows (as in batched mode).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use npu_runtime::Runtime;

use crate::model::{Decoder, KvCache, ModelError};
use crate::weights::ModelDims;

/// How long a step waits for the other decoding transcriptions' steps before running without
/// them: a few decoder steps' worth of the filters and search between two steps.
const PATIENCE: Duration = Duration::from_millis(3);

/// Merges the steps of concurrent decoding loops; shared by every transcription of a model.
#[derive(Default)]
pub struct StepBatcher {
    state: Mutex<State>,
    wake: Condvar,
}

/// A step's logits and cache, or the error of the call that ran it.
type StepOutcome = Result<(Vec<f32>, KvCache), String>;

#[derive(Default)]
struct State {
    /// Decoding loops running now: the steps a merged call waits for.
    loops: usize,
    /// Steps waiting for the next merged call.
    queue: Vec<Step>,
    /// Finished steps, by ticket.
    done: Vec<(u64, StepOutcome)>,
    next_ticket: u64,
    /// A merged call is running (its leader has taken the queue).
    running: bool,
    stats: StepStats,
}

struct Step {
    ticket: u64,
    tokens: Vec<Vec<u32>>,
    cache: KvCache,
}

/// How many decoder calls served how many steps since the model was loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepStats {
    pub calls: u64,
    pub steps: u64,
}

/// Marks a decoding loop as running while it lives.
pub struct LoopGuard<'b> {
    batcher: &'b StepBatcher,
}

impl Drop for LoopGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.batcher.lock();
        st.loops -= 1;
        // Steps waiting for this loop need not wait any longer.
        self.batcher.wake.notify_all();
    }
}

impl StepBatcher {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent (every update is
        // complete before any call that could panic), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a decoding loop whose steps go through [`StepBatcher::step`].
    pub fn enter_loop(&self) -> LoopGuard<'_> {
        self.lock().loops += 1;
        LoopGuard { batcher: self }
    }

    /// Decoder calls and the steps they served.
    pub fn stats(&self) -> StepStats {
        self.lock().stats
    }

    /// One decoding step (`tokens`: one new token per sequence of `cache`), merged with the
    /// steps other loops bring meanwhile; returns the logits of each sequence's token, as
    /// [`Decoder::forward`] with `logit_rows = [0]` does.
    pub fn step(
        &self,
        rt: &Runtime,
        decoder: &Decoder,
        dims: &ModelDims,
        tokens: &[Vec<u32>],
        cache: &mut KvCache,
    ) -> Result<Vec<f32>, ModelError> {
        let mut st = self.lock();
        if st.loops <= 1 && st.queue.is_empty() {
            st.stats.calls += 1;
            st.stats.steps += 1;
            drop(st);
            return decoder.forward(rt, dims, tokens, cache, &[0]);
        }
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        let own = std::mem::replace(cache, KvCache::new(dims, Vec::new()));
        st.queue.push(Step {
            ticket,
            tokens: tokens.to_vec(),
            cache: own,
        });
        let since = Instant::now();
        loop {
            if let Some(i) = st.done.iter().position(|(t, _)| *t == ticket) {
                let (_, result) = st.done.swap_remove(i);
                drop(st);
                let (logits, back) = result.map_err(ModelError::MergedStep)?;
                *cache = back;
                return Ok(logits);
            }
            let everyone = st.queue.len() >= st.loops;
            let waited = since.elapsed() >= PATIENCE;
            let mine_waits = st.queue.iter().any(|s| s.ticket == ticket);
            if !st.running && mine_waits && (everyone || waited) {
                let steps = std::mem::take(&mut st.queue);
                st.running = true;
                st.stats.calls += 1;
                st.stats.steps += steps.len() as u64;
                drop(st);
                let finished = run_merged(rt, decoder, dims, steps);
                st = self.lock();
                st.running = false;
                st.done.extend(finished);
                self.wake.notify_all();
                continue;
            }
            let left = PATIENCE
                .saturating_sub(since.elapsed())
                .max(Duration::from_micros(100));
            st = self
                .wake
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Runs `steps` as one decoder call and gives each its logits and cache back.
fn run_merged(
    rt: &Runtime,
    decoder: &Decoder,
    dims: &ModelDims,
    steps: Vec<Step>,
) -> Vec<(u64, StepOutcome)> {
    let sizes: Vec<usize> = steps.iter().map(|s| s.tokens.len()).collect();
    let tickets: Vec<u64> = steps.iter().map(|s| s.ticket).collect();
    let mut tokens = Vec::new();
    let mut merged: Option<KvCache> = None;
    for s in steps {
        tokens.extend(s.tokens);
        match &mut merged {
            None => merged = Some(s.cache),
            Some(m) => m.append(s.cache),
        }
    }
    let mut cache = merged.expect("a merged call has at least one step");
    let result = decoder.forward(rt, dims, &tokens, &mut cache, &[0]);
    // Split the caches back whatever the outcome: every loop keeps its own.
    let mut parts = Vec::with_capacity(sizes.len());
    for &n in sizes.iter().rev() {
        let at = cache.batch() - n;
        parts.push(cache.split_off(at));
    }
    parts.reverse();
    let v = dims.n_vocab;
    let mut row = 0;
    tickets
        .into_iter()
        .zip(parts)
        .zip(&sizes)
        .map(|((ticket, part), &n)| {
            let r = match &result {
                Ok(logits) => Ok((logits[row * v..(row + n) * v].to_vec(), part)),
                Err(e) => Err(e.to_string()),
            };
            row += n;
            (ticket, r)
        })
        .collect()
}
