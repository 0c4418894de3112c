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
            read(&mut self.src, n, self.eb, s, scratch, self.clock);
            for k in self.sinks.iter_mut() {
                write(k, scratch, self.eb, s, self.clock);
            }
            self.moved += n as u64;
            progressed = true;
        }
    }
}

fn read(side: &mut Side, n: usize, eb: usize, s: &mut Stores<'_, '_>, out: &mut Vec<u8>, now: f64) {
    match side {
        Side::Host { chan } => {
            let c = &mut s.chans[*chan];
            let task = c.queue.front_mut().expect("avail checked");
            task.gather(s.host, n, out);
            if task.pos == task.total {
                c.finish(now, s.bd_done);
            }
        }
        Side::Ring { ring, off, pat } => {
            let r = &mut s.rings[*ring];
            let bytes = r.obj_bytes;
            let o = &mut r.objs[r.dma_ptr];
            gather(o.bytes(bytes), pat, eb, *off, n, out);
            *off += n;
            if *off == bytes {
                o.full = false;
                o.t = now;
                r.dma_ptr = (r.dma_ptr + 1) % r.objs.len();
                *off = 0;
            }
        }
        Side::Link { cur, pat } => {
            let l = &mut s.links[cur.link];
            let p = cur.piece();
            let (start, len) = l.pieces[p];
            let obj = l.objs[cur.slot].bytes(l.bytes);
            let piece = &obj[start..start + len];
            match pat {
                Some(pat) => gather(piece, pat, eb, cur.off, n, out),
                None => out.extend_from_slice(&piece[cur.off..cur.off + n]),
            }
            cur.off += n;
            if cur.off == len {
                l.full[cur.slot][p] = false;
                l.t[cur.slot][p] = now;
                cur.next_piece(l.objs.len());
            }
        }
    }
}

fn write(side: &mut Side, src: &[u8], eb: usize, s: &mut Stores<'_, '_>, now: f64) {
    let n = src.len();
    match side {
        Side::Host { chan } => {
            let c = &mut s.chans[*chan];
            let task = c.queue.front_mut().expect("avail checked");
            task.scatter(s.host, src);
            if task.pos == task.total {
                c.finish(now, s.bd_done);
            }
        }
        Side::Ring { ring, off, pat } => {
            let r = &mut s.rings[*ring];
            let bytes = r.obj_bytes;
            let o = &mut r.objs[r.dma_ptr];
            scatter(o.bytes_mut(bytes), pat, eb, *off, src);
            *off += n;
            if *off == bytes {
                o.full = true;
                o.t = now;
                r.dma_ptr = (r.dma_ptr + 1) % r.objs.len();
                *off = 0;
            }
        }
        Side::Link { cur, pat } => {
            let l = &mut s.links[cur.link];
            let p = cur.piece();
            let (start, len) = l.pieces[p];
            let bytes = l.bytes;
            let obj = l.objs[cur.slot].bytes_mut(bytes);
            let piece = &mut obj[start..start + len];
            match pat {
                Some(pat) => scatter(piece, pat, eb, cur.off, src),
                None => piece[cur.off..cur.off + n].copy_from_slice(src),
            }
            cur.off += n;
            if cur.off == len {
                l.full[cur.slot][p] = true;
                l.t[cur.slot][p] = now;
                cur.next_piece(l.objs.len());
            }
        }
    }
}
