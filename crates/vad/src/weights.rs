//! The Silero VAD v6 16 kHz weights, checked against the architecture by name and shape.

use std::collections::HashMap;
use std::path::Path;

use crate::onnx::Tensor;
use crate::VadError;

/// Output channels of the STFT convolution: 129 real then 129 imaginary parts.
pub(crate) const STFT_OUT: usize = 258;
/// STFT window (the convolution's kernel) and hop.
pub(crate) const N_FFT: usize = 256;
pub(crate) const HOP: usize = 128;
/// LSTM width.
pub(crate) const HIDDEN: usize = 128;

/// A 1-D convolution, kernel 3, padding 1; `w` is `[c_out][c_in × 3]` (PyTorch layout).
#[derive(Debug)]
pub(crate) struct Conv {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub c_in: usize,
    pub c_out: usize,
    pub stride: usize,
}

#[derive(Debug)]
pub(crate) struct Weights {
    /// `[258][256]`: the STFT as a fixed convolution (cosine and sine rows).
    pub stft: Vec<f32>,
    pub convs: [Conv; 4],
    /// `[4 × 128][128]` each, gate order i, f, g, o (PyTorch `LSTMCell`).
    pub w_ih: Vec<f32>,
    pub w_hh: Vec<f32>,
    /// `bias_ih + bias_hh`.
    pub b_gates: Vec<f32>,
    /// The output 1×1 convolution.
    pub w_out: Vec<f32>,
    pub b_out: f32,
}

impl Weights {
    pub(crate) fn from_tensors(
        path: &Path,
        mut t: HashMap<String, Tensor>,
    ) -> Result<Weights, VadError> {
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>, VadError> {
            let tensor = t.remove(name).ok_or_else(|| VadError::MissingTensor {
                path: path.to_path_buf(),
                name: name.to_string(),
            })?;
            if tensor.shape != shape {
                return Err(VadError::Shape {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    expected: shape.to_vec(),
                    got: tensor.shape,
                });
            }
            Ok(tensor.data)
        };
        let stft = take("model.stft.forward_basis_buffer", &[STFT_OUT, 1, N_FFT])?;
        // (c_in, c_out, stride) of encoder.0..3, from Silero v6's published architecture.
        let layers = [
            (STFT_OUT / 2, 128, 1),
            (128, 64, 2),
            (64, 64, 2),
            (64, HIDDEN, 1),
        ];
        let mut convs = Vec::with_capacity(4);
        for (i, (c_in, c_out, stride)) in layers.into_iter().enumerate() {
            let p = format!("model.encoder.{i}.reparam_conv");
            convs.push(Conv {
                w: take(&format!("{p}.weight"), &[c_out, c_in, 3])?,
                b: take(&format!("{p}.bias"), &[c_out])?,
                c_in,
                c_out,
                stride,
            });
        }
        let w_ih = take("model.decoder.rnn.weight_ih", &[4 * HIDDEN, HIDDEN])?;
        let w_hh = take("model.decoder.rnn.weight_hh", &[4 * HIDDEN, HIDDEN])?;
        let b_ih = take("model.decoder.rnn.bias_ih", &[4 * HIDDEN])?;
        let b_hh = take("model.decoder.rnn.bias_hh", &[4 * HIDDEN])?;
        let w_out = take("model.decoder.decoder.2.weight", &[1, HIDDEN, 1])?;
        let b_out = take("model.decoder.decoder.2.bias", &[1])?[0];
        Ok(Weights {
            stft,
            convs: convs.try_into().expect("four layers"),
            w_ih,
            w_hh,
            b_gates: b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect(),
            w_out,
            b_out,
        })
    }
}
