//! One kernel invocation: the runtime sequence, the DMAs and the cores advance in turn until
//! the sequence has finished and nothing can move; then the array must be at rest, as it has to
//! be for the next invocation. If nothing can move while the sequence still waits, that is a
//! deadlock, reported with where every core, DMA and the sequence stand.
//!
//! Time: every object carries the cycle it became full or free; cores add their functions'
//! cycle counts, DMAs move 4 bytes per cycle (the shim share of DDR bandwidth where lower), and
//! the sequence costs a fixed time per transfer it issues. The result is an estimate from that
//! model, not a measurement.

mod core;
mod dma;
mod host;
mod store;

use std::collections::{HashMap, VecDeque};

use aie_kernels::CoreLibrary;

use crate::model::{End, Model, SeqOp};
use crate::pattern::Pattern;
use crate::RunReport;

use self::core::{CoreState, Env, Step};
use self::dma::{Conn, Side, Stores};
use self::host::{Chan, Task};
use self::store::{LinkBuf, LinkCursor, Ring};

/// Cycles the command processor spends issuing one transfer (write BD, patch the address,
/// push the queue): an assumption of the model.
const ISSUE_CYCLES: f64 = 200.0;
/// Stream bandwidth of one DMA channel: one 32-bit word per cycle.
const STREAM_BYTES_PER_CYCLE: f64 = 4.0;

/// A failure during a run: line (if one op is to blame) and message.
pub type Fail = (Option<usize>, String);

pub struct Run<'m, 'h> {
    m: &'m Model,
    lib: &'m CoreLibrary,
    rings: Vec<Ring>,
    ring_index: HashMap<(usize, usize, bool), usize>,
    links: Vec<LinkBuf>,
    conns: Vec<Conn>,
    chans: Vec<Chan>,
    chan_of: HashMap<usize, usize>,
    bd_busy: HashMap<(usize, usize), usize>,
    cores: Vec<CoreState>,
    buffers: Vec<Vec<u32>>,
    host: &'m mut [&'h mut [u8]],
    pc: usize,
    clock: f64,
    scratch: Vec<u8>,
    host_bytes: u64,
}

impl<'m, 'h> Run<'m, 'h> {
    pub fn new(m: &'m Model, lib: &'m CoreLibrary, host: &'m mut [&'h mut [u8]]) -> Run<'m, 'h> {
        let mut rings = Vec::new();
        let mut ring_index = HashMap::new();
        let mut add_ring = |fifo: usize, tile: usize, consumer: bool, rings: &mut Vec<Ring>| {
            let f = &m.fifos[fifo];
            ring_index.insert((fifo, tile, consumer), rings.len());
            rings.push(Ring::new(fifo, tile, consumer, f.depth, f.elem.bytes()));
            rings.len() - 1
        };
        let links: Vec<LinkBuf> = m
            .links
            .iter()
            .map(|l| {
                let eb = l.elem.elem.bytes();
                let pieces = l.pieces.iter().map(|&(s, n)| (s * eb, n * eb)).collect();
                LinkBuf::new(l.depth, l.elem.bytes(), pieces)
            })
            .collect();
        let shim_chans = m
            .fifos
            .iter()
            .filter(|f| f.producer_end == End::Host || f.consumers.iter().any(|c| c.1 == End::Host))
            .count()
            .max(1);
        let ddr_bytes_per_cycle = m.limits.ddr_gbps / m.limits.clock_ghz;
        let shim_bw = STREAM_BYTES_PER_CYCLE.min(ddr_bytes_per_cycle / shim_chans as f64);
        let mut chans = Vec::new();
        let mut chan_of = HashMap::new();
        let mut conns = Vec::new();
        for (fi, f) in m.fifos.iter().enumerate() {
            let eb = f.elem.elem.bytes();
            let obj_pat = |dims: &Option<Vec<(usize, usize)>>| match dims {
                Some(d) => Pattern {
                    base: 0,
                    dims: d.clone(),
                },
                None => Pattern::linear(0, f.elem.elems()),
            };
            let mut host_side = |to_array: bool, tile: usize| {
                chan_of.insert(fi, chans.len());
                chans.push(Chan {
                    fifo: fi,
                    shim: tile,
                    to_array,
                    queue: VecDeque::new(),
                    tokens: VecDeque::new(),
                    max_queued: 0,
                });
                Side::Host {
                    chan: chans.len() - 1,
                }
            };
            let link_side =
                |link: usize, piece: Option<usize>, dims: &Option<Vec<(usize, usize)>>| {
                    let l = &m.links[link];
                    let pieces = match piece {
                        Some(p) => vec![p],
                        None => (0..l.pieces.len()).collect(),
                    };
                    Side::Link {
                        cur: LinkCursor {
                            link,
                            pieces,
                            slot: 0,
                            k: 0,
                            off: 0,
                        },
                        pat: dims.as_ref().map(|d| Pattern {
                            base: 0,
                            dims: d.clone(),
                        }),
                    }
                };
            let src = match f.producer_end {
                End::Host => host_side(true, f.producer),
                End::Ring => Side::Ring {
                    ring: add_ring(fi, f.producer, false, &mut rings),
                    off: 0,
                    pat: obj_pat(&f.producer_dims),
                },
                End::Link { link, piece } => link_side(link, piece, &f.producer_dims),
            };
            let mut sinks = Vec::new();
            for (tile, end, dims) in &f.consumers {
                sinks.push(match end {
                    End::Host => host_side(false, *tile),
                    End::Ring => Side::Ring {
                        ring: add_ring(fi, *tile, true, &mut rings),
                        off: 0,
                        pat: obj_pat(dims),
                    },
                    End::Link { link, piece } => link_side(*link, *piece, dims),
                });
            }
            let touches_host = matches!(src, Side::Host { .. })
                || sinks.iter().any(|s| matches!(s, Side::Host { .. }));
            conns.push(Conn {
                src,
                sinks,
                clock: 0.0,
                bytes_per_cycle: if touches_host {
                    shim_bw
                } else {
                    STREAM_BYTES_PER_CYCLE
                },
                eb,
                moved: 0,
            });
        }
        let cores = (0..m.cores.len()).map(|i| CoreState::new(i, m)).collect();
        let buffers = m
            .buffers
            .iter()
            .map(|b| vec![0u32; b.ty.bytes().div_ceil(4)])
            .collect();
        Run {
            m,
            lib,
            rings,
            ring_index,
            links,
            conns,
            chans,
            chan_of,
            bd_busy: HashMap::new(),
            cores,
            buffers,
            host,
            pc: 0,
            clock: 0.0,
            scratch: Vec::new(),
            host_bytes: 0,
        }
    }

    pub fn execute(mut self) -> Result<RunReport, Fail> {
        let cycles: HashMap<String, u64> = self
            .lib
            .names()
            .map(|n| (n.to_string(), self.lib.get(n).map_or(0, |f| f.cycles())))
            .collect();
        let cycles = move |f: &str| cycles.get(f).copied().unwrap_or(0);
        loop {
            let mut progressed = self.step_host()?;
            progressed |= self.step_dmas();
            progressed |= self.step_cores(&cycles)?;
            if !progressed {
                if self.pc < self.m.seq.len() {
                    return Err(self.deadlock());
                }
                break;
            }
        }
        self.check_rest()?;
        let max_queued = self.chans.iter().map(|c| c.max_queued).max().unwrap_or(0);
        Ok(RunReport {
            estimate_us: self.clock / (self.m.limits.clock_ghz * 1e3),
            calls: self.cores.iter().map(|c| c.calls).sum(),
            host_bytes: self.host_bytes,
            max_queued_tasks: max_queued,
        })
    }

    /// Runs the sequence until it must wait; true when it did anything.
    fn step_host(&mut self) -> Result<bool, Fail> {
        let mut ran = false;
        while let Some(op) = self.m.seq.get(self.pc) {
            match op {
                SeqOp::Memcpy {
                    arg,
                    pattern,
                    repeat,
                    repeat_stride,
                    id,
                    fifo,
                    issue_token,
                    line,
                } => {
                    let c = self.chan_of[fifo];
                    let chan = &mut self.chans[c];
                    let key = (chan.shim, *id);
                    if let Some(prev) = self.bd_busy.get(&key) {
                        let t = &self.m.tiles[chan.shim];
                        return Err((Some(*line), format!("reprograms buffer descriptor {id} of shim tile ({}, {}) while the transfer of line {prev} that uses it is still running; wait for a token that covers it first, or use another id", t.col, t.row)));
                    }
                    let room = self.m.limits.shim_task_queue;
                    if chan.queue.len() >= room {
                        let pending: Vec<String> =
                            chan.queue.iter().map(|t| t.line.to_string()).collect();
                        return Err((Some(*line), format!("pushes a transfer onto the shim channel of @{} while {} are outstanding (lines {}): its task queue holds {room}, and aiecc's push does not wait for room, so the device would drop this transfer (Xilinx/mlir-aie#3734); wait for a token before issuing more", self.m.fifos[*fifo].name, chan.queue.len(), pending.join(", "))));
                    }
                    let eb = self.m.args[*arg].elem.bytes();
                    let rep_bytes = pattern.len() * eb;
                    self.clock += ISSUE_CYCLES;
                    self.bd_busy.insert(key, *line);
                    self.host_bytes += (rep_bytes * repeat) as u64;
                    chan.queue.push_back(Task {
                        arg: *arg,
                        pattern: pattern.clone(),
                        repeat_stride: *repeat_stride,
                        eb,
                        rep_bytes,
                        total: rep_bytes * repeat,
                        pos: 0,
                        bd: key,
                        // S2MM transfers always send a token (aiecc forces issue_token).
                        token: *issue_token || !chan.to_array,
                        line: *line,
                        issued: self.clock,
                    });
                    chan.max_queued = chan.max_queued.max(chan.queue.len());
                }
                SeqOp::Wait { fifo, .. } => {
                    let chan = &mut self.chans[self.chan_of[fifo]];
                    match chan.tokens.pop_front() {
                        Some(t) => self.clock = self.clock.max(t),
                        None => return Ok(ran),
                    }
                }
                SeqOp::RtpWrite {
                    buffer,
                    index,
                    value,
                    ..
                } => {
                    self.buffers[*buffer][*index] = *value as i32 as u32;
                    self.clock += ISSUE_CYCLES;
                }
            }
            self.pc += 1;
            ran = true;
        }
        Ok(ran)
    }

    fn step_dmas(&mut self) -> bool {
        let mut progressed = false;
        let mut bd_done = Vec::new();
        for conn in self.conns.iter_mut() {
            let mut s = Stores {
                rings: &mut self.rings,
                links: &mut self.links,
                chans: &mut self.chans,
                host: self.host,
                bd_done: &mut bd_done,
            };
            progressed |= conn.step(&mut s, &mut self.scratch);
        }
        for bd in bd_done {
            self.bd_busy.remove(&bd);
        }
        progressed
    }

    fn step_cores(&mut self, cycles: &dyn Fn(&str) -> u64) -> Result<bool, Fail> {
        let mut progressed = false;
        let index = &self.ring_index;
        let ring_of = |f: usize, t: usize, c: bool| index.get(&(f, t, c)).copied();
        let mut env = Env {
            model: self.m,
            lib: self.lib,
            rings: &mut self.rings,
            buffers: &mut self.buffers,
            ring_of: &ring_of,
        };
        for core in self.cores.iter_mut() {
            match core.run(&mut env, cycles) {
                Step::Blocked(ran) => progressed |= ran,
                Step::Failed(line, msg) => {
                    let t = &self.m.tiles[self.m.cores[core.index].tile];
                    return Err((Some(line), format!("core ({}, {}): {msg}", t.col, t.row)));
                }
            }
        }
        Ok(progressed)
    }

    fn core_name(&self, i: usize) -> String {
        let t = &self.m.tiles[self.m.cores[i].tile];
        format!("core ({}, {})", t.col, t.row)
    }

    /// What every agent waits for.
    fn stuck(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, c) in self.cores.iter().enumerate() {
            let prog = &self.m.cores[i].prog;
            let line = prog.lines[c.pc];
            let what = match &prog.code[c.pc] {
                crate::program::Ins::Acquire { fifo, port, n, .. } => {
                    let consumer = *port == crate::mlir::ast::Port::Consume;
                    let r = &self.rings[self.ring_index[&(*fifo, self.m.cores[i].tile, consumer)]];
                    format!(
                        "waits to acquire {n} object(s) of @{} ({}): {} of its {} buffers full",
                        self.m.fifos[*fifo].name,
                        if consumer { "Consume" } else { "Produce" },
                        r.full_count(),
                        r.objs.len()
                    )
                }
                crate::program::Ins::End => "has ended (aie.end)".to_string(),
                _ => "stopped".to_string(),
            };
            out.push(format!("{} at line {line} {what}", self.core_name(i)));
        }
        for c in &self.chans {
            if let Some(t) = c.queue.front() {
                out.push(format!(
                    "shim DMA of @{} is on the transfer of line {} ({} of {} bytes moved)",
                    self.m.fifos[c.fifo].name, t.line, t.pos, t.total
                ));
            }
        }
        for r in &self.rings {
            let held: Vec<String> = r.held.iter().map(|(_, l)| format!("line {l}")).collect();
            if !held.is_empty() {
                out.push(format!(
                    "{} holds {} object(s) of @{} (acquired at {})",
                    self.m.tiles[r.tile].name,
                    held.len(),
                    self.m.fifos[r.fifo].name,
                    held.join(", ")
                ));
            }
        }
        out
    }

    fn deadlock(&self) -> Fail {
        let (line, what) = match &self.m.seq[self.pc] {
            SeqOp::Wait { fifo, line } => {
                let c = &self.chans[self.chan_of[fifo]];
                // S2MM transfers always send a token; an MM2S one only with issue_token.
                let why = if c.to_array && c.queue.iter().all(|t| !t.token) {
                    " (no queued transfer on it issues a token: MM2S transfers need issue_token = true)"
                } else {
                    ""
                };
                (
                    *line,
                    format!("aiex.npu.dma_wait on @{}{why}", self.m.fifos[*fifo].name),
                )
            }
            SeqOp::Memcpy { line, .. } | SeqOp::RtpWrite { line, .. } => {
                (*line, "a transfer".to_string())
            }
        };
        (
            Some(line),
            format!(
                "deadlock: the runtime sequence waits at {what} and nothing can move:\n  {}",
                self.stuck().join("\n  ")
            ),
        )
    }

    /// After the sequence: every transfer done, every token taken, every FIFO empty, every
    /// core back where a call starts.
    fn check_rest(&self) -> Result<(), Fail> {
        for c in &self.chans {
            if let Some(t) = c.queue.front() {
                let why = if c.to_array {
                    "the cores took less data than the host sends"
                } else {
                    "the cores produced less data than the host expects"
                };
                return Err((Some(t.line), format!("after the runtime sequence this transfer into @{} has moved only {} of {} bytes: {why}", self.m.fifos[c.fifo].name, t.pos, t.total)));
            }
            if !c.tokens.is_empty() {
                return Err((Some(self.m.seq_line), format!("{} completion token(s) of @{} were never waited for; the next invocation's dma_wait would return before its data arrived", c.tokens.len(), self.m.fifos[c.fifo].name)));
            }
        }
        for (i, c) in self.cores.iter().enumerate() {
            let prog = &self.m.cores[i].prog;
            if c.ended {
                return Err((Some(prog.lines[c.pc]), format!("{} reached aie.end: it will not run for the next invocation (wrap its body in a loop that runs forever)", self.core_name(i))));
            }
            let at_rest = match &c.rest {
                // Registers not yet defined when the core first got there are dead there.
                Some((pc, regs)) => {
                    *pc == c.pc
                        && regs
                            .iter()
                            .zip(c.snapshot(self.m))
                            .all(|(was, now)| *was == self::core::Val::Undef || *was == now)
                }
                None => false,
            };
            if !at_rest {
                return Err((Some(prog.lines[c.pc]), format!("after the runtime sequence {} is not back at the start of a call (it waits here in the middle of one): the host sent or expected a different amount of data than the core's loops take\n  {}", self.core_name(i), self.stuck().join("\n  "))));
            }
        }
        for r in &self.rings {
            if let Some((_, line)) = r.held.front() {
                return Err((
                    Some(*line),
                    format!(
                        "{} still holds an object of @{} after the invocation",
                        self.m.tiles[r.tile].name, self.m.fifos[r.fifo].name
                    ),
                ));
            }
            let full = r.full_count();
            if full > 0 {
                return Err((
                    Some(self.m.fifos[r.fifo].line),
                    format!(
                        "{full} object(s) of @{} in {} were produced but never consumed",
                        self.m.fifos[r.fifo].name, self.m.tiles[r.tile].name
                    ),
                ));
            }
        }
        for (li, l) in self.links.iter().enumerate() {
            if l.full.iter().flatten().any(|&f| f) {
                return Err((
                    Some(self.m.links[li].line),
                    "data is left in this link's buffers after the invocation".to_string(),
                ));
            }
        }
        Ok(())
    }
}
