//! The domain of every number an entry declares: dimensions are at least 1, and no value is so
//! large that the plan's products (bytes, transfers) could overflow. These run before any
//! family's own checks, so a `m = 0` entry is an error naming the key, never a built kernel.

use crate::check::CheckKind;
use crate::plan::Ctx;
use crate::spec::Op;
use crate::CheckError;

/// The largest dimension, tile or padding an entry may declare (2^24). Whisper's largest is
/// the 51865-token vocabulary; no NPU buffer holds anything near 2^24 rows.
pub const MAX_VALUE: usize = 1 << 24;

/// Every dimension of the entry's op, by its TOML key.
fn dims(op: &Op) -> Vec<(&'static str, usize)> {
    match *op {
        Op::Matmul { m, k, n, .. } => vec![("m", m), ("k", k), ("n", n)],
        Op::Attention {
            heads,
            head_dim,
            q_len,
            kv_len,
            ..
        } => vec![
            ("heads", heads),
            ("head_dim", head_dim),
            ("q_len", q_len),
            ("kv_len", kv_len),
        ],
        Op::Ffn {
            rows,
            d_model,
            d_ff,
            ..
        } => vec![("rows", rows), ("d_model", d_model), ("d_ff", d_ff)],
        Op::LayerNorm { rows, dim, .. } => vec![("rows", rows), ("dim", dim)],
        Op::LmHead {
            rows,
            d_model,
            vocab,
            top_k,
            ..
        } => {
            let mut v = vec![("rows", rows), ("d_model", d_model), ("vocab", vocab)];
            if let Some(k) = top_k {
                v.push(("top_k", k));
            }
            v
        }
    }
}

pub(crate) fn check_domain(cx: &Ctx<'_>) -> Result<(), CheckError> {
    let spec = cx.spec;
    for (key, v) in dims(&spec.op) {
        if v == 0 {
            return Err(cx.err(
                CheckKind::Shape,
                format!("{key} = 0: every dimension must be at least 1"),
            ));
        }
        if v > MAX_VALUE {
            return Err(cx.err(
                CheckKind::Shape,
                format!("{key} = {v} is larger than {MAX_VALUE}, the most any entry may declare"),
            ));
        }
    }
    let t = &spec.tiling;
    let tiling = [
        ("tile_m", Some(t.tile_m)),
        ("tile_k", Some(t.tile_k)),
        ("tile_n", Some(t.tile_n)),
        ("columns", Some(t.columns)),
        ("rows", Some(t.rows)),
        ("depth", Some(t.depth)),
        ("pad_m_to", t.pad_m_to),
        ("pad_k_to", t.pad_k_to),
        ("pad_n_to", t.pad_n_to),
    ];
    for (key, v) in tiling {
        match v {
            Some(v) if v > MAX_VALUE => {
                return Err(cx.err(
                    CheckKind::Shape,
                    format!(
                    "tiling.{key} = {v} is larger than {MAX_VALUE}, the most any entry may declare"
                ),
                ))
            }
            Some(0) if key.starts_with("pad_") => {
                return Err(cx.err(
                    CheckKind::Shape,
                    format!(
                    "tiling.{key} = 0: a padded size must be at least 1; remove it to pad nothing"
                ),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}
