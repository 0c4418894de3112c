//! Deterministic random inputs of a spec entry: the same bytes on every run and machine.

use kernel_spec::KernelSpec;

use crate::family;

/// SplitMix64: tiny, fast, good enough for test data, and identical everywhere.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator for one computation: `seed` mixed with a key (see [`computation_key`]), so
    /// computations get different data and adding an entry does not shift the data of others.
    pub fn for_entry(seed: u64, key: &str) -> Self {
        // FNV-1a of the key.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Rng(seed ^ h)
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

    pub fn fill(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    /// `k` distinct ids out of `0..n`, in random order (partial Fisher-Yates).
    pub fn distinct(&mut self, n: usize, k: usize) -> Vec<u32> {
        let mut all: Vec<u32> = (0..n as u32).collect();
        for i in 0..k.min(n) {
            let j = i + (self.next_u64() % (n - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(k);
        all
    }
}

/// One argument of the kernel.
#[derive(Debug, Clone)]
pub enum Data {
    F32(Vec<f32>),
    /// Indices (the LM head's vocabulary subset).
    I32(Vec<i32>),
}

#[derive(Debug, Clone)]
pub struct Tensor {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    pub(crate) fn f32(name: &'static str, shape: &[usize], data: Vec<f32>) -> Self {
        debug_assert_eq!(data.len(), shape.iter().product::<usize>());
        Tensor {
            name,
            shape: shape.to_vec(),
            data: Data::F32(data),
        }
    }

    pub fn as_f32(&self) -> &[f32] {
        match &self.data {
            Data::F32(v) => v,
            Data::I32(_) => panic!("tensor {} holds indices, not f32", self.name),
        }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The inputs of one entry and the shape of its output.
#[derive(Debug, Clone)]
pub struct Case {
    pub inputs: Vec<Tensor>,
    pub output_shape: Vec<usize>,
    /// Causal attention: query i sees keys `0..=causal_offset + i`.
    pub causal_offset: Option<usize>,
}

impl Case {
    pub fn input(&self, name: &str) -> &Tensor {
        self.inputs
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("case has no input {name}"))
    }

    pub fn try_input(&self, name: &str) -> Option<&Tensor> {
        self.inputs.iter().find(|t| t.name == name)
    }

    pub fn output_len(&self) -> usize {
        self.output_shape.iter().product()
    }
}

/// What the reference computes for `spec`: the operation and dtype (not the name, device or
/// tiling, which do not change the mathematics). Entries with the same key (e.g. one shape on
/// npu1 and npu2) get the same inputs and share one reference run.
pub fn computation_key(spec: &KernelSpec) -> String {
    format!("{:?}|{:?}", spec.dtype, spec.op)
}

/// Builds the inputs of `spec` (the family's `case`). Value ranges mimic a trained network so
/// that every part of the computation matters: weights at PyTorch's `nn.Linear` init scale
/// (outputs O(1)), attention logits with a standard deviation above 1 (a peaked, not flat,
/// softmax), LayerNorm rows with a non-zero mean.
pub fn make_case(spec: &KernelSpec, seed: u64) -> Result<Case, String> {
    let mut rng = Rng::for_entry(seed, &computation_key(spec));
    family::of(spec).case(&spec.op, &mut rng)
}

/// An `out_f x in_f` weight at PyTorch's `nn.Linear` init scale, U(-1/√in_f, 1/√in_f).
pub(crate) fn linear_init(rng: &mut Rng, out_f: usize, in_f: usize) -> Vec<f32> {
    let a = 1.0 / (in_f as f32).sqrt();
    rng.fill(out_f * in_f, -a, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_spread() {
        let a = Rng::for_entry(7, "enc_fc1").fill(1000, -1.0, 1.0);
        let b = Rng::for_entry(7, "enc_fc1").fill(1000, -1.0, 1.0);
        let c = Rng::for_entry(7, "enc_fc2").fill(1000, -1.0, 1.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mean = a.iter().sum::<f32>() / 1000.0;
        assert!(mean.abs() < 0.1, "mean {mean}");
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
    }

    #[test]
    fn distinct_ids_are_distinct() {
        let mut ids = Rng::new(3).distinct(100, 40);
        assert_eq!(ids.len(), 40);
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 40);
        assert!(ids.iter().all(|&i| i < 100));
    }
}
