//! Helpers shared by the integration tests: specs from inline TOML, aligned buffers, the aie::mmul
//! block layouts written from the C++ index formulas, and a small deterministic PRNG.
#![allow(dead_code)]

use std::path::Path;

use aie_kernels::numerics::{bf16_to_f32, f32_to_bf16};
use aie_kernels::{Arg, CoreLibrary};
use kernel_spec::KernelSpec;

/// The single entry of `text`, parsed as `<family>.toml`.
pub fn spec(family: &str, text: &str) -> KernelSpec {
    let file = format!("{family}.toml");
    kernel_spec::parse_file(Path::new(&file), text)
        .unwrap_or_else(|e| panic!("test spec does not parse: {e}"))
        .remove(0)
}

/// A 4-byte aligned byte buffer (as the emulator provides them).
#[derive(Clone)]
pub struct Buf {
    words: Vec<u32>,
    len: usize,
}

impl Buf {
    pub fn zeroed(len: usize) -> Buf {
        Buf {
            words: vec![0; len.div_ceil(4)],
            len,
        }
    }
    pub fn bytes(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut bytemuck::cast_slice_mut(&mut self.words)[..len]
    }
    fn ro(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
    pub fn from_u16(v: &[u16]) -> Buf {
        let mut b = Buf::zeroed(2 * v.len());
        b.bytes().copy_from_slice(bytemuck::cast_slice(v));
        b
    }
    pub fn from_f32(v: &[f32]) -> Buf {
        let mut b = Buf::zeroed(4 * v.len());
        b.bytes().copy_from_slice(bytemuck::cast_slice(v));
        b
    }
    pub fn from_i32(v: &[i32]) -> Buf {
        let mut b = Buf::zeroed(4 * v.len());
        b.bytes().copy_from_slice(bytemuck::cast_slice(v));
        b
    }
    pub fn from_i8(v: &[i8]) -> Buf {
        let mut b = Buf::zeroed(v.len());
        b.bytes().copy_from_slice(bytemuck::cast_slice(v));
        b
    }
    pub fn u16s(&self) -> Vec<u16> {
        bytemuck::cast_slice(self.ro()).to_vec()
    }
    pub fn f32s(&self) -> Vec<f32> {
        bytemuck::cast_slice(self.ro()).to_vec()
    }
    pub fn i32s(&self) -> Vec<i32> {
        bytemuck::cast_slice(self.ro()).to_vec()
    }
    pub fn i8s(&self) -> Vec<i8> {
        bytemuck::cast_slice(self.ro()).to_vec()
    }
}

/// Calls `name` with buffers (`Some`) and i32 values.
pub enum A<'a> {
    M(&'a mut Buf),
    I(i32),
}

pub fn call(lib: &CoreLibrary, name: &str, args: Vec<A<'_>>) -> Result<(), aie_kernels::CallError> {
    let f = lib
        .get(name)
        .unwrap_or_else(|| panic!("the library has no {name}"));
    let mut args: Vec<Arg<'_>> = args
        .into_iter()
        .map(|a| match a {
            A::M(b) => Arg::Mem(b.bytes()),
            A::I(v) => Arg::I32(v),
        })
        .collect();
    f.call(&mut args)
}

/// Row-major `rows x cols` -> `br x bc` blocks, block-row-major, row-major inside a block
/// (the C++'s `((r / br) * (cols / bc) + c / bc) * (br * bc) + (r % br) * bc + c % bc`).
pub fn pack<T: Copy + Default>(rm: &[T], rows: usize, cols: usize, br: usize, bc: usize) -> Vec<T> {
    assert_eq!(rm.len(), rows * cols);
    let mut out = vec![T::default(); rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[((r / br) * (cols / bc) + c / bc) * (br * bc) + (r % br) * bc + c % bc] =
                rm[r * cols + c];
        }
    }
    out
}

pub fn unpack<T: Copy + Default>(
    bl: &[T],
    rows: usize,
    cols: usize,
    br: usize,
    bc: usize,
) -> Vec<T> {
    let mut out = vec![T::default(); rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] =
                bl[((r / br) * (cols / bc) + c / bc) * (br * bc) + (r % br) * bc + c % bc];
        }
    }
    out
}

/// splitmix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    /// A bf16 value uniform-ish in [lo, hi), as f32.
    pub fn bf16(&mut self, lo: f32, hi: f32) -> f32 {
        bf16_to_f32(f32_to_bf16(self.uniform(lo, hi)))
    }
    pub fn i8(&mut self) -> i8 {
        ((self.next_u64() % 255) as i32 - 127) as i8
    }
}

pub fn bits(v: &[f32]) -> Vec<u16> {
    v.iter().map(|&x| f32_to_bf16(x)).collect()
}
