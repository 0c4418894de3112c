//! The static rules a design must follow: layout transforms within the DMA's buffer-descriptor
//! fields, core ops on the right FIFO ends and functions, core and mem-tile memory, and host
//! transfers within the shim's limits. Each returns the line to blame.

use std::collections::HashMap;

use aie_kernels::ArgType;
use kernel_spec::Limits;

use crate::mlir::ast::{self, Dims};
use crate::model::{fail, types, Buffer, End, Fail, Fifo, Link, Tile, TileKind};
use crate::pattern::Pattern;
use crate::program::Program;
use crate::HostArg;

/// A FIFO layout transform against the DMA's buffer-descriptor fields and the object it walks.
pub(crate) fn check_dims(
    f: &Fifo,
    dims: &Dims,
    tile: &Tile,
    len: usize,
    what: &str,
    l: &Limits,
) -> Result<(), Fail> {
    let at = |m: String| fail(f.line, format!("@{} {what}: {m}", f.name));
    let (max_dims, max_wrap, max_step) =
        match tile.kind {
            TileKind::Core => (3, 255, 8192),
            TileKind::Mem => (4, 1023, 131072),
            TileKind::Shim => return at(
                "shim tiles take no layout transforms; lay the data out in the runtime sequence"
                    .into(),
            ),
        };
    let eb = f.elem.elem.bytes();
    if dims.is_empty() || dims.len() > max_dims {
        return at(format!(
            "{} dimensions, a {:?} tile's DMA has at most {max_dims}",
            dims.len(),
            tile.kind
        ));
    }
    let (inner_size, inner_stride) = *dims.last().expect("not empty");
    if eb < 4 && inner_stride != 1 {
        return at(format!("the innermost stride is {inner_stride}; for {}-byte elements the DMA moves whole 32-bit words, so it must be 1", eb));
    }
    if !(inner_size * eb).is_multiple_of(4) {
        return at(format!(
            "the innermost size {inner_size} is {} bytes, not a whole number of 32-bit words",
            inner_size * eb
        ));
    }
    for (i, &(size, stride)) in dims.iter().enumerate() {
        if size == 0 || stride == 0 {
            return at(format!(
                "dimension {i} has size {size}, stride {stride}; both must be at least 1"
            ));
        }
        let last = i + 1 == dims.len();
        if !last && !(stride * eb).is_multiple_of(4) {
            return at(format!(
                "the stride {stride} of dimension {i} is not a whole number of 32-bit words"
            ));
        }
        if i > 0 && size * if last { eb } else { 4 } / 4 > max_wrap {
            return at(format!(
                "dimension {i} wraps {size} times, the {:?} tile's BD allows {max_wrap}",
                tile.kind
            ));
        }
        if stride * eb / 4 > max_step {
            return at(format!(
                "stride {stride} is above the {:?} tile's {max_step}-word limit",
                tile.kind
            ));
        }
    }
    let p = Pattern {
        base: 0,
        dims: dims.clone(),
    };
    let _ = l;
    if p.len() != len {
        return at(format!(
            "the dimensions visit {} elements but an object (piece) holds {len}",
            p.len()
        ));
    }
    if let Some((e, how)) = p.permutation_defect(len) {
        return at(format!("the transform visits element {e} {how}: a layout transform of a whole object must move every element exactly once (check the sizes and strides)"));
    }
    Ok(())
}

pub(crate) fn check_core_ops(
    prog: &Program,
    tile: usize,
    tiles: &[Tile],
    fifos: &[Fifo],
    funcs: &HashMap<String, Vec<ArgType>>,
    buffers: &[Buffer],
) -> Result<(), Fail> {
    use crate::program::Ins;
    for &(_, b) in &prog.buffer_regs {
        if buffers[b].tile != tile {
            let line = prog.lines.first().copied().unwrap_or(0);
            return fail(
                line,
                format!(
                    "the core on {} uses @{}, a buffer of {}; a core uses its own buffers",
                    tiles[tile].name, buffers[b].name, tiles[buffers[b].tile].name
                ),
            );
        }
    }
    for (ins, &line) in prog.code.iter().zip(&prog.lines) {
        match ins {
            Ins::Acquire { fifo, port, n, .. } | Ins::Release { fifo, port, n } => {
                let f = &fifos[*fifo];
                let ok = match port {
                    crate::mlir::ast::Port::Produce => f.producer == tile,
                    crate::mlir::ast::Port::Consume => f.consumers.iter().any(|c| c.0 == tile),
                };
                if !ok {
                    return fail(
                        line,
                        format!(
                            "the core on {} is not the {} of @{}",
                            tiles[tile].name,
                            if *port == crate::mlir::ast::Port::Produce {
                                "producer"
                            } else {
                                "a consumer"
                            },
                            f.name
                        ),
                    );
                }
                if *n == 0 {
                    return fail(
                        line,
                        format!("acquires or releases 0 objects of @{}", f.name),
                    );
                }
                if matches!(ins, Ins::Acquire { .. }) && *n > f.depth {
                    return fail(line, format!("acquires {n} objects of @{}, which holds {} (depth): it would wait forever on the device (aiecc does not check this)", f.name, f.depth));
                }
            }
            Ins::Call { func, types, .. } => match funcs.get(func) {
                None => return fail(line, format!("@{func} is called but not declared")),
                Some(sig) if sig != types => {
                    return fail(
                        line,
                        format!(
                            "@{func} is called with ({}) but declared ({})",
                            self::types(types),
                            self::types(sig)
                        ),
                    );
                }
                _ => {}
            },
            _ => {}
        }
    }
    Ok(())
}

pub(crate) fn check_core_memory(
    tile: usize,
    line: usize,
    stack: usize,
    tiles: &[Tile],
    fifos: &[Fifo],
    buffers: &[Buffer],
    l: &Limits,
) -> Result<(), Fail> {
    let mut parts = vec![format!("stack {stack} B")];
    let mut total = stack;
    for b in buffers.iter().filter(|b| b.tile == tile) {
        total += b.ty.bytes();
        parts.push(format!("{} {} B", b.name, b.ty.bytes()));
    }
    for f in fifos {
        let ends = usize::from(f.producer == tile && f.producer_end == End::Ring)
            + f.consumers
                .iter()
                .filter(|c| c.0 == tile && c.1 == End::Ring)
                .count();
        if ends > 0 {
            let bytes = ends * f.depth * f.elem.bytes();
            total += bytes;
            parts.push(format!("@{} {}x{} B", f.name, f.depth, f.elem.bytes()));
        }
    }
    if total > l.core_data_bytes {
        return fail(
            line,
            format!(
                "the core on {} needs {total} bytes of data memory ({}), {} has {}",
                tiles[tile].name,
                parts.join(", "),
                l.mlir_name,
                l.core_data_bytes
            ),
        );
    }
    Ok(())
}

pub(crate) fn check_memtile_memory(
    tiles: &[Tile],
    links: &[Link],
    fifos: &[Fifo],
    l: &Limits,
    d: &ast::Design,
) -> Result<(), Fail> {
    for (t, tile) in tiles
        .iter()
        .enumerate()
        .filter(|(_, t)| t.kind == TileKind::Mem)
    {
        let mine: Vec<&Link> = links.iter().filter(|k| k.tile == t).collect();
        let total: usize = mine.iter().map(|k| k.depth * k.elem.bytes()).sum();
        if total > l.memtile_bytes {
            let parts: Vec<String> = mine
                .iter()
                .map(|k| {
                    format!(
                        "@{} {}x{} B",
                        fifos[if k.join { k.outputs[0] } else { k.inputs[0] }].name,
                        k.depth,
                        k.elem.bytes()
                    )
                })
                .collect();
            let line = d
                .tiles
                .iter()
                .find(|x| x.ssa == tile.name)
                .map_or(0, |x| x.line);
            return fail(
                line,
                format!(
                    "mem tile {} holds {total} bytes of link buffers ({}), {} has {}",
                    tile.name,
                    parts.join(", "),
                    l.mlir_name,
                    l.memtile_bytes
                ),
            );
        }
    }
    Ok(())
}

/// `aiex.npu.dma_memcpy_nd` against the shim buffer-descriptor fields (semantics doc §4).
pub(crate) fn check_memcpy(
    arg: &HostArg,
    sizes: &[usize; 4],
    strides: &[usize; 4],
    id: usize,
    l: &Limits,
    line: usize,
) -> Result<(), Fail> {
    let eb = arg.elem.bytes();
    if id >= l.shim_bds {
        return fail(line, format!("buffer descriptor id {id}: a shim tile has {} (0..{}); id {id} would overwrite another register", l.shim_bds, l.shim_bds - 1));
    }
    if sizes.contains(&0) {
        return fail(line, format!("sizes {sizes:?} contain 0"));
    }
    if !(sizes[3] * eb).is_multiple_of(4) {
        return fail(
            line,
            format!(
                "the innermost size moves {} bytes, not whole 32-bit words",
                sizes[3] * eb
            ),
        );
    }
    let linear = sizes[1] == 1 && sizes[2] == 1 && strides[3] == 1;
    if !linear && sizes[3] * eb / 4 > 1023 {
        return fail(line, format!("the innermost size is {} words, the shim BD allows 1023 unless the transfer is linear", sizes[3] * eb / 4));
    }
    if sizes[2] > 1023 || sizes[1] > 1023 {
        return fail(
            line,
            format!("sizes {sizes:?}: the shim BD wraps at most 1023 in dimensions 1 and 2"),
        );
    }
    if sizes[0] > 64 {
        return fail(
            line,
            format!(
                "repeats {} times, the shim BD iteration count allows 64",
                sizes[0]
            ),
        );
    }
    for (i, &t) in strides.iter().enumerate() {
        if i < 3 && sizes[i] > 1 && t == 0 && i != 0 {
            return fail(
                line,
                format!("dimension {i} has size {} but stride 0", sizes[i]),
            );
        }
        if i == 3 && t != 1 && eb < 4 {
            return fail(line, format!("the innermost stride is {t}; for {eb}-byte elements the shim moves whole words, so it must be 1"));
        }
        if i < 3 && sizes[i] > 1 && !(t * eb).is_multiple_of(4) {
            return fail(
                line,
                format!("stride {t} of dimension {i} is not a whole number of 32-bit words"),
            );
        }
        if t * eb / 4 > 1 << 20 {
            return fail(
                line,
                format!("stride {t} is above the shim's 2^20-word limit"),
            );
        }
    }
    Ok(())
}
