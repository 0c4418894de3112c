//! The plan: how an entry maps onto the array (buffers per tile, DMA channels, transfers). Each
//! family computes its own (`family/<name>.rs`) with the shape helpers of `Ctx`; `check` then
//! holds it against the device limits, and the templates render exactly it.

use serde::Serialize;

use crate::check::{check_grid, CheckError, CheckKind};
use crate::device::Limits;
use crate::seq::{self, GemmPass, SplitOperand};
use crate::{family, Dtype, KernelSpec};

/// One buffer kind in a tile's memory: `count` buffers of `bytes` each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Buffer {
    pub what: &'static str,
    pub bytes: usize,
    pub count: usize,
}

impl Buffer {
    pub(crate) fn total(&self) -> usize {
        self.bytes * self.count
    }
}

/// The mapping of an entry onto the array, shared by `check`, `render` and `estimate_us`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Padded row / reduction / column sizes.
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub columns: usize,
    pub rows: usize,
    pub depth: usize,
    pub core_buffers: Vec<Buffer>,
    pub memtile_buffers: Vec<Buffer>,
    pub core_dma_in: usize,
    pub core_dma_out: usize,
    pub memtile_dma_in: usize,
    pub memtile_dma_out: usize,
    pub shim_dma_in: usize,
    pub shim_dma_out: usize,
    /// Object FIFOs ending in / starting from a core (each needs `depth` BDs and 2 locks).
    pub core_fifos: usize,
    pub core_fifo_elems: usize,
    /// Object FIFO buffers in a mem tile and how many DMA-side uses each has (for BDs).
    pub memtile_bds: usize,
    pub memtile_locks: usize,
    pub tiles_per_core: usize,
    pub ddr_bytes: u64,
    /// Matmul passes (matmul 1, ffn 2, lm_head 1; empty for attention and layernorm).
    pub passes: Vec<GemmPass>,
    /// Runtime sequence of attention and layernorm.
    pub sequence: Option<seq::Sequence>,
}

/// The plan of an entry, after the shape checks (no resource limits checked).
pub fn plan(spec: &KernelSpec) -> Result<Plan, CheckError> {
    Ctx {
        spec,
        lim: spec.device.limits(),
    }
    .plan()
}

/// An entry and the limits it is planned against, with the shape checks the families share.
pub(crate) struct Ctx<'a> {
    pub spec: &'a KernelSpec,
    pub lim: Limits,
}

impl Ctx<'_> {
    /// The grid checks, then the family's plan.
    pub fn plan(&self) -> Result<Plan, CheckError> {
        crate::domain::check_domain(self)?;
        check_grid(self)?;
        family::def(self.spec.op.family()).plan(self)
    }

    pub fn err(&self, kind: CheckKind, message: impl Into<String>) -> CheckError {
        CheckError {
            kind,
            origin: self.spec.origin(),
            message: message.into(),
        }
    }

    pub fn dev(&self) -> &'static str {
        self.lim.mlir_name
    }

    /// `value` padded by `pad` (which must not shrink it).
    pub fn padded(
        &self,
        what: &str,
        value: usize,
        pad: Option<usize>,
        key: &str,
    ) -> Result<usize, CheckError> {
        match pad {
            None => Ok(value),
            Some(p) if p >= value => Ok(p),
            Some(p) => Err(self.err(
                CheckKind::Shape,
                format!(
                    "{key} = {p} is smaller than {what} = {value}; {key} must be at least {value}"
                ),
            )),
        }
    }

    /// `dim` (named `what`, padded via `pad_key`) must split into tiles of `tile` (`tile_key`).
    pub fn divides(
        &self,
        what: &str,
        dim: usize,
        tile_key: &str,
        tile: usize,
        pad_key: &str,
    ) -> Result<usize, CheckError> {
        if tile == 0 {
            return Err(self.err(CheckKind::Shape, format!("{tile_key} must be positive")));
        }
        if !dim.is_multiple_of(tile) {
            let up = dim.div_ceil(tile) * tile;
            return Err(self.err(
                CheckKind::Divisibility,
                format!(
                    "{what} = {dim} does not divide into tiles of {tile_key} = {tile}; \
                     set {pad_key} = {up} (the host zero-pads) or pick a {tile_key} that divides {dim}"
                ),
            ));
        }
        Ok(dim / tile)
    }

    /// Blocks of one dimension must spread evenly over `units` cores/columns/rows.
    pub fn spreads(
        &self,
        what: &str,
        blocks: usize,
        units: usize,
        unit_key: &str,
        pad_key: &str,
        tile: usize,
    ) -> Result<usize, CheckError> {
        if !blocks.is_multiple_of(units) {
            let up = blocks.div_ceil(units) * units * tile;
            return Err(self.err(
                CheckKind::Divisibility,
                format!(
                    "{blocks} {what} blocks do not spread evenly over {units} {unit_key}; \
                     set {pad_key} = {up} or change {unit_key}"
                ),
            ));
        }
        Ok(blocks / units)
    }

    /// The split operand of an entry with `split_weights` (bf16 only).
    pub fn split(
        &self,
        split_weights: bool,
        weights: SplitOperand,
    ) -> Result<SplitOperand, CheckError> {
        if !split_weights {
            return Ok(SplitOperand::None);
        }
        if self.spec.dtype != Dtype::Bf16 {
            return Err(self.err(
                CheckKind::Unsupported,
                format!(
                    "split_weights applies to dtype = \"bf16\" only (it sends bf16 weights as two bf16 planes), not {}; remove it",
                    self.spec.dtype
                ),
            ));
        }
        Ok(weights)
    }

    /// Tiles must be whole multiples of the AIE API mmul shape, unrolled 2x2 in M and N.
    pub fn mmul_fit(
        &self,
        tm: usize,
        tk: usize,
        tn: usize,
        dtype: Dtype,
    ) -> Result<(), CheckError> {
        let (mm, mk, mn) = self.lim.mmul(dtype);
        for (key, v, unit) in [
            ("tile_m", tm, 2 * mm),
            ("tile_k", tk, mk),
            ("tile_n", tn, 2 * mn),
        ] {
            if v % unit != 0 {
                return Err(self.err(
                    CheckKind::Divisibility,
                    format!(
                        "{key} = {v} is not a multiple of {unit} ({dtype} aie::mmul<{mm},{mk},{mn}> on {}, unrolled 2x2 in M and N); \
                         use a multiple of {unit}",
                        self.lim.arch
                    ),
                ));
            }
        }
        Ok(())
    }
}
