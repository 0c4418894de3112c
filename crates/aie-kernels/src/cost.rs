//! The cycle model of one core-function call (for the emulator's timing estimate).
//!
//! - mmul work: MACs / the device's peak MACs per cycle for the dtype (`Limits::macs_per_cycle`),
//!   i.e. a fully pipelined `aie::mmul` loop;
//! - element-wise vector work: one cycle per 16-lane vector operation (loads, stores,
//!   conversions and arithmetic each count one);
//! - scalar work (the per-lane gathers and scatters the C++ writes as scalar loops, the masks
//!   and row statistics): one cycle per element;
//! - a fixed overhead per call (call, prologue, loop set-up).
//!
//! It ignores memory-bank conflicts, stalls on the lookup tables and VLIW co-issue, so it is an
//! estimate to compare designs with, not a cycle-accurate count.

use crate::numerics::Arch;

/// Call, prologue/epilogue and loop set-up of one function call.
pub(crate) const CALL_OVERHEAD: u64 = 32;

/// Vector operations of `vm::exp2` on 16 lanes: aie2 converts, computes the Q8.8 index, does two
/// table lookups and a multiply; aie2p converts and runs the native exp2.
pub(crate) fn exp2_ops(arch: Arch) -> u64 {
    match arch {
        Arch::Aie2 => 8,
        Arch::Aie2p => 3,
    }
}

/// Vector operations of `aie::inv` on 16 lanes (estimate plus Newton steps).
pub(crate) const INV_OPS: u64 = 7;

/// Vector operations of `vm::gelu` on 16 lanes: 22 arithmetic/select operations, one inverse
/// and one exp2.
pub(crate) fn gelu_ops(arch: Arch) -> u64 {
    22 + INV_OPS + exp2_ops(arch)
}

/// Cycles of `macs` multiply-accumulates at `per_cycle` MACs per cycle.
pub(crate) fn mac_cycles(macs: usize, per_cycle: f64) -> u64 {
    (macs as f64 / per_cycle).ceil() as u64
}

/// Cycles of `ops` vector operations over each 16-lane group of `elems` elements.
pub(crate) fn vector_cycles(elems: usize, ops: u64) -> u64 {
    elems.div_ceil(16) as u64 * ops
}
