//! Resource checks of an entry's plan against its device model: the grid, core and mem-tile
//! memory, DMA channels, host transfers, buffer descriptors and locks. These apply to every
//! family; each family's own shape checks and plan live in `family/<name>.rs` (see `plan`).

use serde::{Deserialize, Serialize};

use crate::device::Limits;
use crate::plan::{plan, Buffer, Ctx, Plan};
use crate::{family, seq, KernelSpec};

/// What an entry uses of the device (written to the manifest).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceUse {
    /// Per-core data memory, including the stack.
    pub core_data_bytes: usize,
    /// Per-mem-tile memory (the busiest mem tile).
    pub memtile_bytes: usize,
    /// Compute cores used.
    pub cores: usize,
    /// Array columns used.
    pub columns: usize,
    /// DMA channels used over all core, mem and shim tiles of the design.
    pub dma_channels: usize,
    /// Buffer descriptors of the busiest core tile / mem tile.
    pub core_bds: usize,
    pub memtile_bds: usize,
    /// Bytes moved between host memory and the array per call (including re-reads).
    pub ddr_bytes: u64,
    /// Output tiles each core computes per call.
    pub tiles_per_core: usize,
}

/// Which check failed (tests match on it; the message says the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    Shape,
    Divisibility,
    CoreMemory,
    MemTileMemory,
    Grid,
    DmaChannels,
    /// A host transfer the shim's buffer descriptors cannot express.
    DmaPattern,
    BufferDescriptors,
    Locks,
    FifoDepth,
    Unsupported,
}

/// A failed check: `<file>: entry "<name>": <need>, <device> has <limit>; <fix>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct CheckError {
    pub kind: CheckKind,
    /// `kernel-specs/matmul.toml: entry "enc_fc1"`.
    pub origin: String,
    pub message: String,
}

fn kib(bytes: usize) -> String {
    if bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// Every host transfer must fit the shim BD fields (as aie-opt's verifier of
/// `aiex.npu.dma_memcpy_nd` checks them): 4-byte granularity, innermost and second sizes of at
/// most 1023 (the innermost in 32-bit words, unless the transfer is linear), at most 64
/// repetitions, strides of at most 2^20 words.
fn check_transfers(cx: &Ctx<'_>, p: &Plan) -> Result<(), CheckError> {
    let ops = p
        .passes
        .iter()
        .flat_map(|x| x.ops.iter())
        .chain(p.sequence.iter().flat_map(|x| x.ops.iter()));
    for op in ops {
        let seq::SeqOp::Memcpy {
            arg,
            sizes,
            strides,
            fifo,
            ..
        } = op
        else {
            continue;
        };
        let eb = family::def(cx.spec.op.family()).arg_bytes(cx.spec, p, arg);
        let what =
            format!("the transfer of %{arg} into @{fifo} (sizes {sizes:?}, strides {strides:?})");
        let linear = sizes[..3].iter().all(|&x| x == 1) && strides[3] == 1;
        let fail = |m: String| {
            Err(cx.err(
                CheckKind::DmaPattern,
                format!("{what} {m}; use smaller tiles (the innermost dimension is one tile row)"),
            ))
        };
        if !(sizes[3] * eb).is_multiple_of(4) {
            return fail(format!(
                "moves {} bytes per row, not a multiple of 4",
                sizes[3] * eb
            ));
        }
        if !linear && sizes[3] * eb / 4 > 1023 {
            return fail(format!(
                "has an innermost size of {} words, the shim allows 1023",
                sizes[3] * eb / 4
            ));
        }
        if sizes[2] > 1023 || sizes[1] > 1023 {
            return fail("has a middle size above 1023".to_string());
        }
        if sizes[0] > 64 {
            return fail(format!("repeats {} times, the shim allows 64", sizes[0]));
        }
        if let Some(big) = strides.iter().find(|&&st| st * eb / 4 > 1 << 20) {
            return fail(format!(
                "has a stride of {} words, the shim allows 2^20",
                big * eb / 4
            ));
        }
    }
    Ok(())
}

struct Stats {
    max_bds: usize,
    max_repeat: usize,
    max_d1: usize,
}

/// The grid every plan needs: columns and rows on the device, a FIFO depth it supports.
pub(crate) fn check_grid(cx: &Ctx<'_>) -> Result<(), CheckError> {
    let t = &cx.spec.tiling;
    let l = &cx.lim;
    if t.columns == 0 || t.rows == 0 {
        return Err(cx.err(CheckKind::Grid, "columns and rows must be at least 1"));
    }
    if t.columns > l.columns {
        return Err(cx.err(
            CheckKind::Grid,
            format!(
                "uses {} columns, {} has {}; lower columns to {}",
                t.columns,
                cx.dev(),
                l.columns,
                l.columns
            ),
        ));
    }
    if t.rows > l.core_rows {
        return Err(cx.err(
            CheckKind::Grid,
            format!(
                "uses {} core rows per column, {} has {}; lower rows to {}",
                t.rows,
                cx.dev(),
                l.core_rows,
                l.core_rows
            ),
        ));
    }
    if t.depth == 0 || t.depth > l.max_fifo_depth {
        return Err(cx.err(
            CheckKind::FifoDepth,
            format!(
                "object-FIFO depth {} is outside 1..={} (each element needs its own buffer, locks and BD on {}); use depth = 2",
                t.depth,
                l.max_fifo_depth,
                cx.dev()
            ),
        ));
    }
    Ok(())
}

/// Checks an entry against its device and returns what it uses.
pub fn check(spec: &KernelSpec) -> Result<ResourceUse, CheckError> {
    check_with(spec, &spec.device.limits())
}

/// `check` against explicit limits (a device variant, or a what-if in tests). Messages name the
/// device by `limits.mlir_name`.
pub fn check_with(spec: &KernelSpec, limits: &Limits) -> Result<ResourceUse, CheckError> {
    let cx = Ctx {
        spec,
        lim: limits.clone(),
    };
    let l = &cx.lim;
    let dev = cx.dev();
    let p = cx.plan()?;

    // Core data memory: every FIFO element and local buffer, plus the stack.
    let core: usize = p.core_buffers.iter().map(Buffer::total).sum::<usize>() + l.stack_bytes;
    if core > l.core_data_bytes {
        let parts: Vec<String> = p
            .core_buffers
            .iter()
            .map(|b| format!("{} {}x{}", b.what, b.count, kib(b.bytes)))
            .collect();
        let fix = family::def(spec.op.family()).core_memory_fix();
        let names: Vec<&str> = p.core_buffers.iter().map(|b| b.what).collect();
        return Err(cx.err(
            CheckKind::CoreMemory,
            format!(
                "{} + {} stack need {} of core data memory ({}), {} has {}; {}",
                names.join("+"),
                kib(l.stack_bytes),
                kib(core),
                parts.join(", "),
                dev,
                kib(l.core_data_bytes),
                fix
            ),
        ));
    }
    let mem: usize = p.memtile_buffers.iter().map(Buffer::total).sum();
    if mem > l.memtile_bytes {
        let parts: Vec<String> = p
            .memtile_buffers
            .iter()
            .map(|b| format!("{} {}x{}", b.what, b.count, kib(b.bytes)))
            .collect();
        return Err(cx.err(
            CheckKind::MemTileMemory,
            format!(
                "mem-tile staging needs {} ({}), {} has {}; lower rows or the tile sizes",
                kib(mem),
                parts.join(", "),
                dev,
                kib(l.memtile_bytes)
            ),
        ));
    }
    let chans = [
        ("core tile input", p.core_dma_in, l.core_dma_in, "core"),
        ("core tile output", p.core_dma_out, l.core_dma_out, "core"),
        ("mem tile input", p.memtile_dma_in, l.memtile_dma_in, "mem"),
        (
            "mem tile output",
            p.memtile_dma_out,
            l.memtile_dma_out,
            "mem",
        ),
        ("shim input", p.shim_dma_in, l.shim_dma_in, "shim"),
        ("shim output", p.shim_dma_out, l.shim_dma_out, "shim"),
    ];
    for (what, need, have, _) in chans {
        if need > have {
            return Err(cx.err(
                CheckKind::DmaChannels,
                format!("needs {need} {what} DMA channels, {dev} has {have}; lower rows (each core in a column needs its own mem-tile channel)"),
            ));
        }
    }
    check_transfers(&cx, &p)?;
    let limits = p
        .passes
        .iter()
        .map(|x| (x.max_bds, x.max_repeat, x.max_d1))
        .chain(
            p.sequence
                .iter()
                .map(|x| (x.max_bds, x.max_repeat, x.max_d1)),
        );
    for (max_bds, max_repeat, max_d1) in limits {
        let pass = Stats {
            max_bds,
            max_repeat,
            max_d1,
        };
        if pass.max_bds > l.shim_bds {
            return Err(cx.err(
                CheckKind::BufferDescriptors,
                format!(
                    "the runtime sequence keeps {} transfers in flight per shim tile between waits, {dev} has {} buffer descriptors; \
                     use more columns or a larger tile_n (fewer output tiles per group)",
                    pass.max_bds, l.shim_bds
                ),
            ));
        }
        if pass.max_repeat > 64 {
            return Err(cx.err(
                CheckKind::BufferDescriptors,
                format!(
                    "a shim transfer repeats {} times, the shim BD iteration count allows 64; raise tile_n or use more columns",
                    pass.max_repeat
                ),
            ));
        }
        if pass.max_d1 > 1023 {
            return Err(cx.err(
                CheckKind::BufferDescriptors,
                format!(
                    "a shim transfer spans {} rows, the BD wrap allows 1023; lower tile_m or rows",
                    pass.max_d1
                ),
            ));
        }
    }
    let core_bds = p.core_fifo_elems;
    if core_bds > l.core_bds {
        return Err(cx.err(
            CheckKind::BufferDescriptors,
            format!(
                "needs {core_bds} buffer descriptors per core tile, {dev} has {}; lower depth",
                l.core_bds
            ),
        ));
    }
    if p.memtile_bds > l.memtile_bds {
        return Err(cx.err(
            CheckKind::BufferDescriptors,
            format!(
                "needs {} buffer descriptors per mem tile, {dev} has {}; lower rows",
                p.memtile_bds, l.memtile_bds
            ),
        ));
    }
    let core_locks = 2 * p.core_fifos;
    if core_locks > l.core_locks || p.memtile_locks > l.memtile_locks {
        return Err(cx.err(
            CheckKind::Locks,
            format!(
                "needs {core_locks} core locks / {} mem-tile locks, {dev} has {} / {}; lower rows",
                p.memtile_locks, l.core_locks, l.memtile_locks
            ),
        ));
    }
    let cores = p.columns * p.rows;
    let per_col = p.core_dma_in + p.core_dma_out;
    Ok(ResourceUse {
        core_data_bytes: core,
        memtile_bytes: mem,
        cores,
        columns: p.columns,
        dma_channels: cores * per_col
            + p.columns * (p.memtile_dma_in + p.memtile_dma_out + p.shim_dma_in + p.shim_dma_out),
        core_bds,
        memtile_bds: p.memtile_bds,
        ddr_bytes: p.ddr_bytes,
        tiles_per_core: p.tiles_per_core,
    })
}

/// Roofline estimate of one call in microseconds: the slower of compute at the device's peak
/// MACs/cycle for the dtype on the cores used, and the host traffic at the DMA bandwidth.
/// Entries that fail their plan get the compute-only bound of the whole array.
pub fn estimate_us(spec: &KernelSpec) -> f64 {
    let l = spec.device.limits();
    let macs = spec.op.macs();
    let (cores, ddr) = match plan(spec) {
        Ok(p) => (p.columns * p.rows, p.ddr_bytes as f64),
        Err(_) => (l.cores(), 0.0),
    };
    let compute_s = macs / (cores as f64 * l.macs_per_cycle(spec.dtype) * l.clock_ghz * 1e9);
    let dma_s = ddr / (l.ddr_gbps * 1e9);
    compute_s.max(dma_s) * 1e6
}
