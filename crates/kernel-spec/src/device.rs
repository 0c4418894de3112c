//! Device model of the npu1 (Phoenix/Hawk Point) and npu2 (Strix/Krackan) arrays.
//!
//! Numbers from `docs/npu-facts.md` (collected from mlir-aie, XRT and xdna-driver sources).

use crate::{Device, Dtype};

/// Hardware limits and throughput figures of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// MLIR-AIE device name (`aie.device(<this>)`).
    pub mlir_name: &'static str,
    /// Peano target triple prefix / AIE API architecture (`aie2`, `aie2p`).
    pub arch: &'static str,
    /// Usable columns (each with shim + mem tile).
    pub columns: usize,
    /// Core rows per column.
    pub core_rows: usize,
    /// Row index of the first core tile (row 0 shim, row 1 mem tile).
    pub first_core_row: usize,
    /// First usable column index (npu1: physical column 0 has no shim DMA, but MLIR-AIE's
    /// `npu1` device already numbers the usable columns 0..4).
    pub first_column: usize,
    pub core_data_bytes: usize,
    pub core_program_bytes: usize,
    pub core_locks: usize,
    pub core_bds: usize,
    pub core_dma_in: usize,
    pub core_dma_out: usize,
    pub memtile_bytes: usize,
    pub memtile_locks: usize,
    pub memtile_bds: usize,
    pub memtile_dma_in: usize,
    pub memtile_dma_out: usize,
    pub shim_dma_in: usize,
    pub shim_dma_out: usize,
    /// Buffer descriptors per shim DMA (reused by the runtime sequence after each wait).
    pub shim_bds: usize,
    /// Transfers a shim DMA channel's task queue holds. aiecc (mlir-aie c668d2cb) pushes
    /// without waiting for room, and a push to a full queue is dropped (Xilinx/mlir-aie#3734),
    /// so a runtime sequence must wait before a channel has more outstanding.
    pub shim_task_queue: usize,
    /// Deepest object FIFO we allow: each element needs its own buffer and lock pair and a BD.
    pub max_fifo_depth: usize,
    /// Bytes reserved in each core's data memory for the stack (`stack_size` of every
    /// `aie.core`; aiecc's default is 1 KiB, the epilogues keep per-channel arrays there).
    pub stack_bytes: usize,
    /// Core clock, GHz (typical sustained).
    pub clock_ghz: f64,
    /// Peak MACs per core per cycle for bf16 inputs.
    pub macs_per_cycle_bf16: f64,
    /// Peak MACs per core per cycle for int8 inputs.
    pub macs_per_cycle_int8: f64,
    /// Peak f32 vector lanes per core per cycle (for f32 / elementwise work).
    pub macs_per_cycle_f32: f64,
    /// Sustained host-memory bandwidth through the shim DMAs of the whole array, GB/s.
    pub ddr_gbps: f64,
    /// AIE API `aie::mmul` shape (M, K, N) for bf16.
    pub mmul_bf16: (usize, usize, usize),
    /// AIE API `aie::mmul` shape (M, K, N) for int8.
    pub mmul_int8: (usize, usize, usize),
    /// Vector lanes of a 512-bit bf16 register (used by the vector kernels).
    pub vector_lanes_bf16: usize,
}

impl Limits {
    pub fn mmul(&self, dtype: Dtype) -> (usize, usize, usize) {
        match dtype {
            Dtype::Int8 => self.mmul_int8,
            Dtype::Bf16 | Dtype::F32 => self.mmul_bf16,
        }
    }

    pub fn macs_per_cycle(&self, dtype: Dtype) -> f64 {
        match dtype {
            Dtype::Bf16 => self.macs_per_cycle_bf16,
            Dtype::Int8 => self.macs_per_cycle_int8,
            Dtype::F32 => self.macs_per_cycle_f32,
        }
    }

    pub fn cores(&self) -> usize {
        self.columns * self.core_rows
    }
}

const KIB: usize = 1024;

impl Device {
    /// The device model used by `check` and the templates.
    pub fn limits(self) -> Limits {
        let npu1 = Limits {
            mlir_name: "npu1",
            arch: "aie2",
            columns: 4,
            core_rows: 4,
            first_core_row: 2,
            first_column: 0,
            core_data_bytes: 64 * KIB,
            core_program_bytes: 16 * KIB,
            core_locks: 16,
            core_bds: 16,
            core_dma_in: 2,
            core_dma_out: 2,
            memtile_bytes: 512 * KIB,
            memtile_locks: 64,
            memtile_bds: 48,
            memtile_dma_in: 6,
            memtile_dma_out: 6,
            shim_dma_in: 2,
            shim_dma_out: 2,
            shim_bds: 16,
            shim_task_queue: 4,
            max_fifo_depth: 4,
            stack_bytes: 2 * KIB,
            clock_ghz: 1.0,
            macs_per_cycle_bf16: 128.0,
            macs_per_cycle_int8: 256.0,
            macs_per_cycle_f32: 16.0,
            ddr_gbps: 30.0,
            mmul_bf16: (4, 8, 4),
            mmul_int8: (4, 8, 8),
            vector_lanes_bf16: 32,
        };
        match self {
            Device::Npu1 => npu1,
            Device::Npu2 => Limits {
                mlir_name: "npu2",
                arch: "aie2p",
                columns: 8,
                // Strix doubles int8 throughput per core; bf16 runs at the same MAC rate (BFP16
                // emulation is not modelled).
                macs_per_cycle_int8: 512.0,
                clock_ghz: 1.5,
                ddr_gbps: 60.0,
                mmul_bf16: (4, 8, 8),
                mmul_int8: (8, 8, 8),
                ..npu1
            },
        }
    }
}
