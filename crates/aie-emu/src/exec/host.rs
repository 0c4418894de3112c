//! The host side: shim DMA channels with their task queues and completion tokens, and the
//! runtime sequence that pushes transfers and waits for tokens.

use std::collections::VecDeque;

use crate::pattern::Pattern;

/// One `dma_memcpy_nd` in flight.
#[derive(Debug)]
pub struct Task {
    pub arg: usize,
    pub pattern: Pattern,
    pub repeat_stride: usize,
    pub eb: usize,
    /// Bytes of one repetition and of the whole task.
    pub rep_bytes: usize,
    pub total: usize,
    pub pos: usize,
    pub bd: (usize, usize),
    pub token: bool,
    pub line: usize,
    pub issued: f64,
}

impl Task {
    fn pattern_of(&self, rep: usize) -> Pattern {
        Pattern {
            base: self.pattern.base + rep * self.repeat_stride,
            dims: self.pattern.dims.clone(),
        }
    }

    pub fn gather(&mut self, host: &[&mut [u8]], mut n: usize, out: &mut Vec<u8>) {
        while n > 0 {
            let rep = self.pos / self.rep_bytes;
            let within = self.pos % self.rep_bytes;
            let m = n.min(self.rep_bytes - within);
            super::store::gather(
                host[self.arg],
                &self.pattern_of(rep),
                self.eb,
                within,
                m,
                out,
            );
            self.pos += m;
            n -= m;
        }
    }

    pub fn scatter(&mut self, host: &mut [&mut [u8]], mut src: &[u8]) {
        while !src.is_empty() {
            let rep = self.pos / self.rep_bytes;
            let within = self.pos % self.rep_bytes;
            let m = src.len().min(self.rep_bytes - within);
            let pat = self.pattern_of(rep);
            super::store::scatter(host[self.arg], &pat, self.eb, within, &src[..m]);
            self.pos += m;
            src = &src[m..];
        }
    }
}

/// A shim DMA channel of one FIFO.
#[derive(Debug)]
pub struct Chan {
    pub fifo: usize,
    pub shim: usize,
    /// Host → array (MM2S) or array → host (S2MM).
    pub to_array: bool,
    pub queue: VecDeque<Task>,
    /// Completion tokens not yet waited for, with the cycle each arrived.
    pub tokens: VecDeque<f64>,
    pub max_queued: usize,
}

impl Chan {
    /// The running task completed at cycle `now`.
    pub fn finish(&mut self, now: f64, bd_done: &mut Vec<(usize, usize)>) {
        let t = self.queue.pop_front().expect("a running task");
        bd_done.push(t.bd);
        if t.token {
            self.tokens.push_back(now);
        }
    }
}
