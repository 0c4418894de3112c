//! DMA transfers of one object FIFO: from its producer end (host transfers, a core's ring, or
//! a link's buffers) to every consumer end at once (broadcast), as a stream of bytes that each
//! side lays out with its own access pattern. A transfer moves only while the source has a full
//! object (or a queued host transfer) and every destination has a free one, as the locks of the
//! buffer descriptors allow on the device.

use crate::pattern::Pattern;

use super::host::Chan;
use super::store::{gather, scatter, LinkBuf, LinkCursor, Ring};

#[derive(Debug)]
pub enum Side {
    /// A shim DMA channel fed (MM2S) or drained (S2MM) by the runtime sequence.
    Host { chan: usize },
    Ring {
        ring: usize,
        off: usize,
        pat: Pattern,
    },
    /// `pat` is relative to the current piece.
    Link {
        cur: LinkCursor,
        pat: Option<Pattern>,
    },
}

#[derive(Debug)]
pub struct Conn {
    pub src: Side,
    pub sinks: Vec<Side>,
    /// Cycle until which the channel is busy.
    pub clock: f64,
    pub bytes_per_cycle: f64,
    /// Element size of the FIFO.
    pub eb: usize,
    pub moved: u64,
}

/// Everything a transfer touches besides the connection itself.
pub struct Stores<'a, 'h> {
    pub rings: &'a mut [Ring],
    pub links: &'a mut [LinkBuf],
    pub chans: &'a mut [Chan],
    pub host: &'a mut [&'h mut [u8]],
    /// Busy shim buffer descriptors: freed when their transfer completes.
    pub bd_done: &'a mut Vec<(usize, usize)>,
}

/// Bytes available on a side and the cycle they became available, or `None` when it must wait.
fn avail(side: &Side, src: bool, s: &Stores<'_, '_>) -> Option<(usize, f64)> {
    match side {
        Side::Host { chan } => {
            let t = s.chans[*chan].queue.front()?;
            Some((t.total - t.pos, t.issued))
        }
        Side::Ring { ring, off, .. } => {
            let r = &s.rings[*ring];
            let o = &r.objs[r.dma_ptr];
            (o.full == src).then_some((r.obj_bytes - off, o.t))
        }
        Side::Link { cur, .. } => {
            let l = &s.links[cur.link];
            let p = cur.piece();
            (l.full[cur.slot][p] == src).then_some((l.pieces[p].1 - cur.off, l.t[cur.slot][p]))
        }
    }
}

impl Conn {
    /// Moves as much as the buffers allow; returns whether anything moved.
    pub fn step(&mut self, s: &mut Stores<'_, '_>, scratch: &mut Vec<u8>) -> bool {
        let mut progressed = false;
        loop {
            let Some((mut n, mut t)) = avail(&self.src, true, s) else {
                return progressed;
            };
            for k in &self.sinks {
                let Some((m, tk)) = avail(k, false, s) else {
                    return progressed;
                };
                n = n.min(m);
                t = t.max(tk);
            }
            if n == 0 {
                return progressed;
            }
            let start = self.clock.max(t);
            self.clock = start + n as f64 / self.bytes_per_cycle;
            scratch.clear();
            read(&self.src, n, self.eb, s, scratch);
            advance(&mut self.src, n, false, s, self.clock);
            for k in self.sinks.iter_mut() {
                write(k, scratch, self.eb, s);
                advance(k, n, true, s, self.clock);
            }
            self.moved += n as u64;
            progressed = true;
        }
    }
}

/// Copies the next `n` stream bytes out of the source side.
fn read(side: &Side, n: usize, eb: usize, s: &mut Stores<'_, '_>, out: &mut Vec<u8>) {
    match side {
        Side::Host { chan } => {
            let task = s.chans[*chan].queue.front_mut().expect("avail checked");
            task.gather(s.host, n, out);
        }
        Side::Ring { ring, off, pat } => {
            let r = &s.rings[*ring];
            gather(r.objs[r.dma_ptr].bytes(r.obj_bytes), pat, eb, *off, n, out);
        }
        Side::Link { cur, pat } => {
            let l = &s.links[cur.link];
            let (start, len) = l.pieces[cur.piece()];
            let piece = &l.objs[cur.slot].bytes(l.bytes)[start..start + len];
            match pat {
                Some(pat) => gather(piece, pat, eb, cur.off, n, out),
                None => out.extend_from_slice(&piece[cur.off..cur.off + n]),
            }
        }
    }
}

/// Writes `src` as the next stream bytes of a destination side.
fn write(side: &Side, src: &[u8], eb: usize, s: &mut Stores<'_, '_>) {
    match side {
        Side::Host { chan } => {
            let task = s.chans[*chan].queue.front_mut().expect("avail checked");
            task.scatter(s.host, src);
        }
        Side::Ring { ring, off, pat } => {
            let r = &mut s.rings[*ring];
            let bytes = r.obj_bytes;
            let ptr = r.dma_ptr;
            scatter(r.objs[ptr].bytes_mut(bytes), pat, eb, *off, src);
        }
        Side::Link { cur, pat } => {
            let l = &mut s.links[cur.link];
            let (start, len) = l.pieces[cur.piece()];
            let bytes = l.bytes;
            let piece = &mut l.objs[cur.slot].bytes_mut(bytes)[start..start + len];
            match pat {
                Some(pat) => scatter(piece, pat, eb, cur.off, src),
                None => piece[cur.off..cur.off + src.len()].copy_from_slice(src),
            }
        }
    }
}

/// Moves a side past `n` bytes just read or written. A finished object (or link piece) becomes
/// `full` (written by a destination) or free (read by the source) at cycle `now`; a finished
/// host transfer completes its task.
fn advance(side: &mut Side, n: usize, full: bool, s: &mut Stores<'_, '_>, now: f64) {
    match side {
        Side::Host { chan } => {
            let c = &mut s.chans[*chan];
            let task = c.queue.front().expect("avail checked");
            if task.pos == task.total {
                c.finish(now, s.bd_done);
            }
        }
        Side::Ring { ring, off, .. } => {
            let r = &mut s.rings[*ring];
            *off += n;
            if *off == r.obj_bytes {
                let o = &mut r.objs[r.dma_ptr];
                o.full = full;
                o.t = now;
                r.dma_ptr = (r.dma_ptr + 1) % r.objs.len();
                *off = 0;
            }
        }
        Side::Link { cur, .. } => {
            let l = &mut s.links[cur.link];
            let p = cur.piece();
            cur.off += n;
            if cur.off == l.pieces[p].1 {
                l.full[cur.slot][p] = full;
                l.t[cur.slot][p] = now;
                cur.next_piece(l.objs.len());
            }
        }
    }
}
