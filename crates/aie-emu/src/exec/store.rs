//! Object storage: the buffers of a FIFO end in a core tile (a ring) and the shared buffers of a
//! mem-tile link, each object with its lock state (full or free) and the time it got there.

use std::collections::VecDeque;

use crate::pattern::Pattern;

/// One object buffer. Words keep it 4-byte aligned for the core-function models.
#[derive(Debug, Clone)]
pub struct Obj {
    pub data: Vec<u32>,
    pub full: bool,
    /// Cycle at which it became full (or free).
    pub t: f64,
}

impl Obj {
    pub fn new(bytes: usize) -> Obj {
        Obj {
            data: vec![0; bytes.div_ceil(4)],
            full: false,
            t: 0.0,
        }
    }

    pub fn bytes(&self, len: usize) -> &[u8] {
        &bytemuck::cast_slice(&self.data)[..len]
    }

    pub fn bytes_mut(&mut self, len: usize) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.data)[..len]
    }
}

/// The `depth` buffers of one FIFO end in a core tile. The core takes objects at `core_ptr`
/// and the DMA at `dma_ptr`; a consumer ring is filled by the DMA and emptied by the core, a
/// producer ring the other way round.
#[derive(Debug)]
pub struct Ring {
    pub fifo: usize,
    pub tile: usize,
    pub consumer: bool,
    pub obj_bytes: usize,
    pub objs: Vec<Obj>,
    pub core_ptr: usize,
    pub dma_ptr: usize,
    /// Objects the core holds, oldest first, with the line of the acquire that took them.
    pub held: VecDeque<(usize, usize)>,
}

impl Ring {
    pub fn new(fifo: usize, tile: usize, consumer: bool, depth: usize, obj_bytes: usize) -> Ring {
        Ring {
            fifo,
            tile,
            consumer,
            obj_bytes,
            objs: (0..depth).map(|_| Obj::new(obj_bytes)).collect(),
            core_ptr: 0,
            dma_ptr: 0,
            held: VecDeque::new(),
        }
    }

    /// Whether the core may take object `i`: full for a consumer, free for a producer.
    pub fn core_ready(&self, i: usize) -> bool {
        self.objs[i].full == self.consumer
    }

    pub fn full_count(&self) -> usize {
        self.objs.iter().filter(|o| o.full).count()
    }
}

/// The shared buffers of a link: `depth` large objects, each cut into pieces with their own
/// lock (full or free).
#[derive(Debug)]
pub struct LinkBuf {
    pub objs: Vec<Obj>,
    pub full: Vec<Vec<bool>>,
    pub t: Vec<Vec<f64>>,
    /// Byte range of each piece.
    pub pieces: Vec<(usize, usize)>,
    pub bytes: usize,
}

impl LinkBuf {
    pub fn new(depth: usize, bytes: usize, pieces: Vec<(usize, usize)>) -> LinkBuf {
        let n = pieces.len();
        LinkBuf {
            objs: (0..depth).map(|_| Obj::new(bytes)).collect(),
            full: vec![vec![false; n]; depth],
            t: vec![vec![0.0; n]; depth],
            pieces,
            bytes,
        }
    }
}

/// A position in a link's buffers: which pieces this side visits (all in order for the single
/// side, one piece for a FIFO on the many side), the current object, piece and byte offset.
#[derive(Debug, Clone)]
pub struct LinkCursor {
    pub link: usize,
    pub pieces: Vec<usize>,
    pub slot: usize,
    pub k: usize,
    pub off: usize,
}

impl LinkCursor {
    pub fn piece(&self) -> usize {
        self.pieces[self.k]
    }

    /// Moves past a finished piece; returns true when the object is done for this side.
    pub fn next_piece(&mut self, depth: usize) -> bool {
        self.off = 0;
        self.k += 1;
        if self.k == self.pieces.len() {
            self.k = 0;
            self.slot = (self.slot + 1) % depth;
            true
        } else {
            false
        }
    }
}

/// Copies `n` stream bytes starting at stream byte `pos` out of `buf`, whose elements of `eb`
/// bytes are visited in `pat` order.
pub fn gather(
    buf: &[u8],
    pat: &Pattern,
    eb: usize,
    mut pos: usize,
    mut n: usize,
    out: &mut Vec<u8>,
) {
    while n > 0 {
        let (addr, run) = pat.run_at(pos / eb);
        let within = pos % eb;
        let m = (run * eb - within).min(n);
        let start = addr * eb + within;
        out.extend_from_slice(&buf[start..start + m]);
        pos += m;
        n -= m;
    }
}

/// Writes `src` into `buf` at stream byte `pos`, elements placed in `pat` order.
pub fn scatter(buf: &mut [u8], pat: &Pattern, eb: usize, mut pos: usize, mut src: &[u8]) {
    while !src.is_empty() {
        let (addr, run) = pat.run_at(pos / eb);
        let within = pos % eb;
        let m = (run * eb - within).min(src.len());
        let start = addr * eb + within;
        buf[start..start + m].copy_from_slice(&src[..m]);
        pos += m;
        src = &src[m..];
    }
}
