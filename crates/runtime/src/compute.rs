//! The compute type of the CPU backend: how weights are stored and products computed when
//! numerics are plain f32 (faster-whisper's `compute_type`). NPU numerics and the device
//! backends ignore it: they round where the kernels round.

use std::fmt;
use std::str::FromStr;

/// How the CPU computes the linear layers (and stores what decoding streams from memory).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ComputeType {
    /// f32 products (f16 weight copies for decoding where they are exact): the accuracy
    /// reference.
    #[default]
    F32,
    /// int8 weights with one scale per output channel, activations quantised per row at run
    /// time, i32 accumulation; cross-attention keys and values kept as f16.
    Int8,
}

impl ComputeType {
    pub const ALL: [ComputeType; 2] = [ComputeType::F32, ComputeType::Int8];

    pub fn name(self) -> &'static str {
        match self {
            ComputeType::F32 => "f32",
            ComputeType::Int8 => "int8",
        }
    }
}

impl fmt::Display for ComputeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ComputeType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(ComputeType::F32),
            "int8" => Ok(ComputeType::Int8),
            other => Err(format!(
                "unknown compute type `{other}`: use one of f32, int8"
            )),
        }
    }
}
