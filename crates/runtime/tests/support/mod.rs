//! Small spec entries of every family and independent readers of host-buffer bytes, shared by
//! the host-packing and emulator tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use npu_runtime::kernel_spec::{self, KernelSpec};

/// One TOML file per family, parsed by kernel-spec like the real ones. Shapes are small but
/// pad every dimension the family can pad.
pub const SPECS: &[(&str, &str)] = &[
    (
        "matmul.toml",
        r#"
[[kernel]]
name = "t_mm"
device = "npu1"
dtype = "bf16"
m = 40
k = 200
n = 90
bias = true
residual = true
tiling = { tile_m = 16, tile_k = 32, tile_n = 32, columns = 1, rows = 1, pad_m_to = 48, pad_k_to = 224, pad_n_to = 96 }

[[kernel]]
name = "t_mm_split"
device = "npu1"
dtype = "bf16"
m = 32
k = 128
n = 64
bias = true
gelu = true
split_weights = true
tiling = { tile_m = 16, tile_k = 64, tile_n = 32, columns = 1, rows = 1 }

[[kernel]]
name = "t_mm_split_npu2"
device = "npu2"
dtype = "bf16"
m = 32
k = 128
n = 64
bias = true
gelu = true
split_weights = true
tiling = { tile_m = 16, tile_k = 64, tile_n = 32, columns = 2, rows = 1 }

[[kernel]]
name = "t_mm_q8"
device = "npu1"
dtype = "int8"
m = 30
k = 256
n = 64
bias = true
quant = { weight_scale = "per_channel", requantize_output = true }
tiling = { tile_m = 16, tile_k = 64, tile_n = 32, columns = 1, rows = 1, pad_m_to = 32 }

[[kernel]]
name = "t_mm_q8_bf"
device = "npu1"
dtype = "int8"
m = 32
k = 256
n = 64
bias = true
gelu = true
quant = { weight_scale = "per_tensor", requantize_output = false }
tiling = { tile_m = 16, tile_k = 64, tile_n = 32, columns = 1, rows = 1 }
"#,
    ),
    (
        "attention.toml",
        r#"
[[kernel]]
name = "t_attn_enc"
device = "npu1"
dtype = "bf16"
kind = "encoder"
heads = 2
head_dim = 64
q_len = 36
kv_len = 36
tiling = { tile_m = 8, tile_n = 8, columns = 1, rows = 1, pad_m_to = 40, pad_n_to = 40 }

[[kernel]]
name = "t_attn_causal"
device = "npu1"
dtype = "bf16"
kind = "causal_self"
heads = 2
head_dim = 64
q_len = 5
kv_len = 24
tiling = { tile_m = 8, tile_n = 8, columns = 1, rows = 1, pad_m_to = 8 }

[[kernel]]
name = "t_attn_cross"
device = "npu1"
dtype = "bf16"
kind = "cross"
heads = 2
head_dim = 64
q_len = 3
kv_len = 40
tiling = { tile_m = 8, tile_n = 16, columns = 1, rows = 1, pad_m_to = 8, pad_n_to = 48 }

[[kernel]]
name = "t_attn_cross_npu2"
device = "npu2"
dtype = "bf16"
kind = "cross"
heads = 2
head_dim = 64
q_len = 3
kv_len = 40
tiling = { tile_m = 8, tile_n = 16, columns = 2, rows = 1, pad_m_to = 8, pad_n_to = 48 }
"#,
    ),
    (
        "ffn.toml",
        r#"
[[kernel]]
name = "t_ffn"
device = "npu1"
dtype = "bf16"
rows = 20
d_model = 128
d_ff = 512
tiling = { tile_m = 8, tile_k = 64, tile_n = 64, columns = 1, rows = 1, pad_m_to = 24 }

[[kernel]]
name = "t_ffn_split"
device = "npu1"
dtype = "bf16"
rows = 24
d_model = 128
d_ff = 512
split_weights = true
tiling = { tile_m = 8, tile_k = 64, tile_n = 64, columns = 1, rows = 1 }
"#,
    ),
    (
        "layernorm.toml",
        r#"
[[kernel]]
name = "t_ln"
device = "npu1"
dtype = "bf16"
rows = 20
dim = 512
eps = 1e-5
tiling = { tile_m = 8, columns = 1, rows = 1, pad_m_to = 24 }

[[kernel]]
name = "t_ln_f32"
device = "npu1"
dtype = "f32"
rows = 24
dim = 512
eps = 1e-5
tiling = { tile_m = 8, columns = 1, rows = 1 }
"#,
    ),
    (
        "lm_head.toml",
        r#"
[[kernel]]
name = "t_lm"
device = "npu1"
dtype = "bf16"
rows = 3
d_model = 128
vocab = 1000
tiling = { tile_m = 64, tile_k = 64, tile_n = 8, columns = 1, rows = 1, pad_m_to = 1024, pad_n_to = 8 }

[[kernel]]
name = "t_lm_top"
device = "npu1"
dtype = "bf16"
rows = 3
d_model = 128
vocab = 1000
top_k = 77
tiling = { tile_m = 64, tile_k = 64, tile_n = 8, columns = 1, rows = 1, pad_m_to = 128, pad_n_to = 8 }

[[kernel]]
name = "t_lm_split"
device = "npu1"
dtype = "bf16"
rows = 3
d_model = 128
vocab = 1000
split_weights = true
tiling = { tile_m = 64, tile_k = 64, tile_n = 8, columns = 1, rows = 1, pad_m_to = 1024, pad_n_to = 8 }

[[kernel]]
name = "t_lm_split_npu2"
device = "npu2"
dtype = "bf16"
rows = 3
d_model = 128
vocab = 1000
split_weights = true
tiling = { tile_m = 64, tile_k = 64, tile_n = 16, columns = 2, rows = 1, pad_m_to = 1024, pad_n_to = 16 }
"#,
    ),
];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn specs() -> Vec<KernelSpec> {
    SPECS
        .iter()
        .flat_map(|(file, text)| {
            kernel_spec::parse_file(Path::new(file), text).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

pub fn spec(name: &str) -> KernelSpec {
    specs()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no test spec {name}"))
}

/// Element `i` of a little-endian bf16 buffer, decoded here (not with the runtime's helpers).
pub fn bf16_at(b: &[u8], i: usize) -> f32 {
    f32::from_bits(((b[2 * i + 1] as u32) << 24) | ((b[2 * i] as u32) << 16))
}

/// The raw 16 bits of bf16 element `i`.
pub fn u16_at(b: &[u8], i: usize) -> u32 {
    (b[2 * i] as u32) | ((b[2 * i + 1] as u32) << 8)
}

pub fn f32_at(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

pub fn i8_at(b: &[u8], i: usize) -> i8 {
    b[i] as i8
}

/// `(name, elements, element type)` of `aie.runtime_sequence(%x : memref<NxT>, ...)`.
pub fn design_args(design: &str) -> Vec<(String, usize, String)> {
    let line = design
        .lines()
        .find(|l| l.trim_start().starts_with("aie.runtime_sequence("))
        .expect("the design has a runtime sequence");
    let inner = line.split_once('(').unwrap().1.rsplit_once(')').unwrap().0;
    inner
        .split(", ")
        .map(|a| {
            let (name, ty) = a.split_once(" : ").expect("%name : type");
            let body = ty
                .trim()
                .strip_prefix("memref<")
                .and_then(|t| t.strip_suffix('>'))
                .expect("1-D memref");
            let (len, elem) = body.split_once('x').expect("NxT");
            (
                name.trim().trim_start_matches('%').to_string(),
                len.parse().expect("length"),
                elem.to_string(),
            )
        })
        .collect()
}
