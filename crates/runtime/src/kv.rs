//! Attention keys or values kept between calls (the decoder's cross-attention K/V), as f32 or,
//! to halve the bytes each decoding step streams, as f16.

use std::borrow::Cow;

use half::f16;
use half::slice::HalfFloatSliceExt;

/// A `[rows, width]` matrix of attention keys or values. Built by [`crate::Runtime::kv_tensor`],
/// read by [`crate::Runtime::attention_kv`].
#[derive(Clone, Debug)]
pub struct KvTensor {
    rows: usize,
    width: usize,
    data: KvData,
}

#[derive(Clone, Debug)]
enum KvData {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

/// A borrowed view of the stored elements (row-major, row stride = width).
#[derive(Clone, Copy, Debug)]
pub(crate) enum KvView<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

impl<'a> KvView<'a> {
    pub(crate) fn len(&self) -> usize {
        match self {
            KvView::F32(x) => x.len(),
            KvView::F16(x) => x.len(),
        }
    }

    /// The first `n` elements as f32: borrowed when stored so, converted otherwise.
    pub(crate) fn f32_prefix(self, n: usize) -> Cow<'a, [f32]> {
        match self {
            KvView::F32(x) => Cow::Borrowed(&x[..n]),
            KvView::F16(h) => {
                let mut out = vec![0.0; n];
                h[..n].convert_to_f32_slice(&mut out);
                Cow::Owned(out)
            }
        }
    }

    /// Every element as f32.
    pub(crate) fn to_f32(self) -> Cow<'a, [f32]> {
        self.f32_prefix(self.len())
    }
}

impl KvTensor {
    /// Keeps `data` (`rows × width`, row-major) as f32.
    ///
    /// # Panics
    /// If `data.len()` is not a multiple of `width` (a caller bug).
    pub fn f32(data: Vec<f32>, width: usize) -> KvTensor {
        let rows = rows_of(data.len(), width);
        KvTensor {
            rows,
            width,
            data: KvData::F32(data),
        }
    }

    /// Stores `data` as f16, round to nearest; magnitudes past f16's largest finite value
    /// (65504) saturate rather than become infinite.
    ///
    /// # Panics
    /// As [`KvTensor::f32`].
    pub fn f16(data: &[f32], width: usize) -> KvTensor {
        let rows = rows_of(data.len(), width);
        let mut h = vec![f16::ZERO; data.len()];
        const CHUNK: usize = 4096;
        let mut clamped = [0.0f32; CHUNK];
        for (h, x) in h.chunks_mut(CHUNK).zip(data.chunks(CHUNK)) {
            let c = &mut clamped[..x.len()];
            for (c, &x) in c.iter_mut().zip(x) {
                *c = x.clamp(-65504.0, 65504.0);
            }
            h.convert_from_f32_slice(c);
        }
        KvTensor {
            rows,
            width,
            data: KvData::F16(h),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether the elements are stored as f16.
    pub fn is_f16(&self) -> bool {
        matches!(self.data, KvData::F16(_))
    }

    /// The elements as f32: borrowed when stored so, converted otherwise.
    pub fn to_f32(&self) -> Cow<'_, [f32]> {
        self.view().to_f32()
    }

    pub(crate) fn view(&self) -> KvView<'_> {
        match &self.data {
            KvData::F32(x) => KvView::F32(x),
            KvData::F16(h) => KvView::F16(h),
        }
    }
}

fn rows_of(len: usize, width: usize) -> usize {
    assert!(
        width > 0 && len.is_multiple_of(width),
        "KvTensor: {len} elements are not rows of width {width}"
    );
    len / width
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_storage_rounds_and_saturates() {
        let x = [1.0, -2.5, 1.0e-3, 70_000.0, -1.0e6, 0.1];
        let t = KvTensor::f16(&x, 3);
        assert!(t.is_f16());
        assert_eq!((t.rows(), t.width()), (2, 3));
        let back = t.to_f32();
        for (&b, &x) in back.iter().zip(&x) {
            let want = f16::from_f32(x.clamp(-65504.0, 65504.0)).to_f32();
            assert_eq!(b.to_bits(), want.to_bits(), "{x}");
            assert!(b.is_finite());
        }
        assert_eq!(back[3], 65504.0);
        let f = KvTensor::f32(x.to_vec(), 2);
        assert!(matches!(f.to_f32(), Cow::Borrowed(_)));
        assert_eq!(f.rows(), 3);
    }
}
