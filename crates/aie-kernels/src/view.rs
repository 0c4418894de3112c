//! Checked views of a call's arguments: the argument list against the signature, and the bytes
//! of each `Arg::Mem` as bf16 bits (`u16`), `f32`, `i32` or `i8` slices (bytemuck).

use crate::{Arg, ArgType, CallError};

/// The arguments of one call, checked against the signature: memory buffers in order, then
/// the scalar `i32` arguments in order.
pub(crate) struct Bound<'s> {
    pub mems: Vec<&'s mut [u8]>,
    pub ints: Vec<i32>,
}

/// Checks kinds, count and byte lengths of `args` against `sig`.
pub(crate) fn bind<'s>(
    func: &str,
    sig: &[ArgType],
    args: &'s mut [Arg<'_>],
) -> Result<Bound<'s>, CallError> {
    if args.len() != sig.len() {
        return Err(CallError(format!(
            "{func}: called with {} arguments, the kernel takes {} ({})",
            args.len(),
            sig.len(),
            sig.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut mems = Vec::with_capacity(sig.len());
    let mut ints = Vec::new();
    for (i, (arg, ty)) in args.iter_mut().zip(sig).enumerate() {
        match (arg, ty) {
            (Arg::Mem(bytes), ArgType::Mem(m)) => {
                if bytes.len() != m.bytes() {
                    return Err(CallError(format!(
                        "{func}: argument {i} ({m}) is a buffer of {} bytes, the kernel reads and writes {} bytes",
                        bytes.len(),
                        m.bytes()
                    )));
                }
                mems.push(&mut **bytes);
            }
            (Arg::I32(v), ArgType::I32) => ints.push(*v),
            (Arg::Mem(_), ArgType::I32) => {
                return Err(CallError(format!(
                    "{func}: argument {i} must be an i32 value, got a buffer"
                )))
            }
            (Arg::I32(_), ArgType::Mem(m)) => {
                return Err(CallError(format!(
                    "{func}: argument {i} must be a buffer ({m}), got an i32 value"
                )))
            }
        }
    }
    Ok(Bound { mems, ints })
}

fn misaligned(func: &str, what: &str, e: bytemuck::PodCastError) -> CallError {
    CallError(format!(
        "{func}: the {what} buffer cannot be viewed as its element type ({e:?}); buffers must be 4-byte aligned"
    ))
}

/// bf16 elements (as their bit patterns).
pub(crate) fn bf16<'a>(func: &str, what: &str, b: &'a [u8]) -> Result<&'a [u16], CallError> {
    bytemuck::try_cast_slice(b).map_err(|e| misaligned(func, what, e))
}

pub(crate) fn bf16_mut<'a>(
    func: &str,
    what: &str,
    b: &'a mut [u8],
) -> Result<&'a mut [u16], CallError> {
    bytemuck::try_cast_slice_mut(b).map_err(|e| misaligned(func, what, e))
}

pub(crate) fn f32s<'a>(func: &str, what: &str, b: &'a [u8]) -> Result<&'a [f32], CallError> {
    bytemuck::try_cast_slice(b).map_err(|e| misaligned(func, what, e))
}

pub(crate) fn f32s_mut<'a>(
    func: &str,
    what: &str,
    b: &'a mut [u8],
) -> Result<&'a mut [f32], CallError> {
    bytemuck::try_cast_slice_mut(b).map_err(|e| misaligned(func, what, e))
}

pub(crate) fn i32s<'a>(func: &str, what: &str, b: &'a [u8]) -> Result<&'a [i32], CallError> {
    bytemuck::try_cast_slice(b).map_err(|e| misaligned(func, what, e))
}

pub(crate) fn i32s_mut<'a>(
    func: &str,
    what: &str,
    b: &'a mut [u8],
) -> Result<&'a mut [i32], CallError> {
    bytemuck::try_cast_slice_mut(b).map_err(|e| misaligned(func, what, e))
}

pub(crate) fn i8s(b: &[u8]) -> &[i8] {
    bytemuck::cast_slice(b)
}

pub(crate) fn i8s_mut(b: &mut [u8]) -> &mut [i8] {
    bytemuck::cast_slice_mut(b)
}

/// Splits the bound buffers into exactly `N` (the signature guarantees the count).
pub(crate) fn take<'s, const N: usize>(
    func: &str,
    mems: Vec<&'s mut [u8]>,
) -> Result<[&'s mut [u8]; N], CallError> {
    let n = mems.len();
    mems.try_into()
        .map_err(|_| CallError(format!("{func}: expected {N} buffers, got {n}")))
}
