//! Specs rendered from TOML text through the real templates, and host buffers for them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use aie_emu::{EmuError, Emulator};
use kernel_spec::KernelSpec;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The one entry of `toml` (a `<family>.toml` file's text).
pub fn spec(family: &str, toml: &str) -> KernelSpec {
    let file = workspace().join(format!("kernel-specs/{family}.toml"));
    let mut v = kernel_spec::parse_file(&file, toml).expect("test spec parses");
    kernel_spec::check(&v[0]).expect("test spec passes the checks");
    v.remove(0)
}

/// The rendered design of `spec`.
pub fn design(spec: &KernelSpec) -> String {
    let r = kernel_spec::render(spec, &workspace().join("templates")).expect("renders");
    r.files
        .into_iter()
        .find(|(n, _)| n == "design.mlir")
        .expect("a design")
        .1
}

pub fn emulator(spec: &KernelSpec, text: &str) -> Result<Emulator, EmuError> {
    Emulator::from_text(spec, Path::new("design.mlir"), text)
}

/// Zero-filled host buffers of the right sizes.
pub fn zero_host(emu: &Emulator) -> Vec<Vec<u8>> {
    emu.host_args()
        .iter()
        .map(|a| vec![0u8; a.bytes()])
        .collect()
}

pub fn run(emu: &Emulator, host: &mut [Vec<u8>]) -> Result<aie_emu::RunReport, EmuError> {
    let mut views: Vec<&mut [u8]> = host.iter_mut().map(|v| v.as_mut_slice()).collect();
    emu.run(&mut views)
}

pub fn bf16(v: f32) -> u16 {
    half::bf16::from_f32(v).to_bits()
}

pub fn f32_of(b: u16) -> f32 {
    half::bf16::from_bits(b).to_f32()
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn put_bf16(buf: &mut [u8], vals: &[f32]) {
    for (i, v) in vals.iter().enumerate() {
        buf[2 * i..2 * i + 2].copy_from_slice(&bf16(*v).to_le_bytes());
    }
}

pub fn get_bf16(buf: &[u8]) -> Vec<f32> {
    buf.chunks_exact(2)
        .map(|c| f32_of(u16::from_le_bytes([c[0], c[1]])))
        .collect()
}

/// A plain bf16 matmul entry without epilogue parameters (its host layout is row-major X,
/// row-major Wᵀ and row-major Y, so a test can pack it by hand).
pub const PLAIN_MATMUL: &str = r#"
[[kernel]]
name = "emu_plain"
device = "npu1"
dtype = "bf16"
m = 64
k = 128
n = 64
tiling = { tile_m = 16, tile_k = 32, tile_n = 16, columns = 2, rows = 2 }
"#;
