//! The design with every name resolved and every static rule checked: tiles and their
//! memories, object FIFOs with their ends, links with their pieces, cores as programs, and the
//! runtime sequence. What the device or aiecc's lowering would reject, or silently get wrong,
//! is an error naming the op's line.

use std::collections::HashMap;

use aie_kernels::{ArgType, CoreLibrary, MemType};
use kernel_spec::Limits;

use crate::mlir::ast::{self, Dims};
use crate::pattern::Pattern;
use crate::program::{self, Program};
use crate::rules;
use crate::HostArg;

/// A static error: line and message (the caller adds the file).
pub type Fail = (Option<usize>, String);

pub(crate) fn fail<T>(line: usize, msg: impl Into<String>) -> Result<T, Fail> {
    Err((Some(line), msg.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileKind {
    Shim,
    Mem,
    Core,
}

#[derive(Debug, Clone)]
pub struct Tile {
    pub name: String,
    pub col: usize,
    pub row: usize,
    pub kind: TileKind,
}

/// Where one end of an object FIFO keeps its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Host memory, through a shim DMA channel and the runtime sequence's transfers.
    Host,
    /// Buffers of a core tile (`depth` of them), used by the core program.
    Ring,
    /// The shared buffers of a mem-tile link; `piece` for the FIFOs on its "many" side.
    Link { link: usize, piece: Option<usize> },
}

#[derive(Debug, Clone)]
pub struct Fifo {
    pub name: String,
    pub line: usize,
    pub producer: usize,
    pub producer_end: End,
    /// Layout the producer reads objects in (`dimensionsToStream`).
    pub producer_dims: Option<Dims>,
    /// Consumer tile, its end, and the layout it writes objects in (`dimensionsFromStream`).
    pub consumers: Vec<(usize, End, Option<Dims>)>,
    pub depth: usize,
    pub elem: MemType,
}

#[derive(Debug, Clone)]
pub struct Link {
    pub line: usize,
    pub tile: usize,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    /// Element range of each piece in the large object.
    pub pieces: Vec<(usize, usize)>,
    /// Elements of the large object and its element type.
    pub elem: MemType,
    pub depth: usize,
    /// Join (many inputs, one output) rather than distribute or 1:1.
    pub join: bool,
}

#[derive(Debug, Clone)]
pub struct Buffer {
    pub name: String,
    pub tile: usize,
    pub ty: MemType,
}

#[derive(Debug, Clone)]
pub struct Core {
    pub tile: usize,
    pub prog: Program,
}

#[derive(Debug, Clone)]
pub enum SeqOp {
    Memcpy {
        arg: usize,
        pattern: Pattern,
        repeat: usize,
        repeat_stride: usize,
        id: usize,
        fifo: usize,
        issue_token: bool,
        line: usize,
    },
    Wait {
        fifo: usize,
        line: usize,
    },
    RtpWrite {
        buffer: usize,
        index: usize,
        value: i64,
        line: usize,
    },
}

pub struct Model {
    pub limits: Limits,
    pub tiles: Vec<Tile>,
    pub fifos: Vec<Fifo>,
    pub links: Vec<Link>,
    pub buffers: Vec<Buffer>,
    pub cores: Vec<Core>,
    pub args: Vec<HostArg>,
    pub seq: Vec<SeqOp>,
    pub seq_line: usize,
}

struct Names<'a> {
    fifos: &'a HashMap<String, usize>,
    fifo_decls: &'a [Fifo],
    buffers: &'a HashMap<String, usize>,
}

impl program::Names for Names<'_> {
    fn fifo(&self, name: &str) -> Option<usize> {
        self.fifos.get(name).copied()
    }
    fn fifo_elem(&self, fifo: usize) -> &MemType {
        &self.fifo_decls[fifo].elem
    }
    fn buffer(&self, ssa: &str) -> Option<usize> {
        self.buffers.get(ssa).copied()
    }
}

pub fn build(d: &ast::Design, limits: Limits, lib: &CoreLibrary) -> Result<Model, Fail> {
    if d.device != limits.mlir_name {
        return fail(
            d.device_line,
            format!(
                "the design targets {}, the spec entry {}",
                d.device, limits.mlir_name
            ),
        );
    }
    // Tiles.
    let mut tiles = Vec::new();
    let mut tile_of: HashMap<String, usize> = HashMap::new();
    for t in &d.tiles {
        let kind = match t.row {
            0 => TileKind::Shim,
            1 => TileKind::Mem,
            r if r >= limits.first_core_row && r < limits.first_core_row + limits.core_rows => {
                TileKind::Core
            }
            r => {
                return fail(
                    t.line,
                    format!(
                        "row {r} does not exist on {} (rows 0..{})",
                        limits.mlir_name,
                        limits.first_core_row + limits.core_rows
                    ),
                )
            }
        };
        if t.col >= limits.columns {
            return fail(
                t.line,
                format!(
                    "column {} does not exist on {} ({} columns)",
                    t.col, limits.mlir_name, limits.columns
                ),
            );
        }
        if tiles
            .iter()
            .any(|o: &Tile| o.col == t.col && o.row == t.row)
        {
            return fail(
                t.line,
                format!("tile ({}, {}) is declared twice", t.col, t.row),
            );
        }
        tile_of.insert(t.ssa.clone(), tiles.len());
        tiles.push(Tile {
            name: t.ssa.clone(),
            col: t.col,
            row: t.row,
            kind,
        });
    }
    let tile = |name: &str, line: usize| -> Result<usize, Fail> {
        tile_of
            .get(name)
            .copied()
            .ok_or((Some(line), format!("%{name} is not a tile")))
    };

    // Core functions: every declaration must be a function the kernel C++ defines, with its types.
    let mut funcs = HashMap::new();
    for f in &d.funcs {
        let Some(model) = lib.get(&f.name) else {
            let known: Vec<&str> = lib.names().collect();
            return fail(f.line, format!("@{} is not a function of this entry's kernel C++ (the emulator models {}); a design may call only those", f.name, known.join(", ")));
        };
        if model.signature() != f.sig.as_slice() {
            return fail(
                f.line,
                format!(
                    "@{} is declared as ({}) but the kernel C++ defines it as ({})",
                    f.name,
                    types(&f.sig),
                    types(model.signature())
                ),
            );
        }
        funcs.insert(f.name.clone(), f.sig.clone());
    }

    // FIFOs (ends resolved after the links).
    let mut fifo_of: HashMap<String, usize> = HashMap::new();
    let mut fifos = Vec::new();
    for f in &d.fifos {
        if fifo_of.contains_key(&f.name) {
            return fail(f.line, format!("@{} is declared twice", f.name));
        }
        if f.depth == 0 || f.depth > limits.max_fifo_depth {
            return fail(
                f.line,
                format!(
                    "@{}: depth {} is outside 1..={} on {}",
                    f.name, f.depth, limits.max_fifo_depth, limits.mlir_name
                ),
            );
        }
        let producer = tile(&f.producer, f.line)?;
        let mut consumers = Vec::new();
        for (c, dims) in &f.consumers {
            consumers.push((tile(c, f.line)?, End::Ring, dims.clone()));
        }
        fifo_of.insert(f.name.clone(), fifos.len());
        fifos.push(Fifo {
            name: f.name.clone(),
            line: f.line,
            producer,
            producer_end: End::Ring,
            producer_dims: f.producer_dims.clone(),
            consumers,
            depth: f.depth,
            elem: f.elem.clone(),
        });
    }
    let fifo = |name: &str, line: usize| -> Result<usize, Fail> {
        fifo_of.get(name).copied().ok_or((
            Some(line),
            format!("@{name} is not an object FIFO of this design"),
        ))
    };

    // Links.
    let mut links = Vec::new();
    let mut linked: HashMap<usize, usize> = HashMap::new();
    for l in &d.links {
        let inputs = l
            .inputs
            .iter()
            .map(|n| fifo(n, l.line))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = l
            .outputs
            .iter()
            .map(|n| fifo(n, l.line))
            .collect::<Result<Vec<_>, _>>()?;
        if inputs.is_empty() || outputs.is_empty() {
            return fail(
                l.line,
                "a link needs at least one input and one output FIFO",
            );
        }
        if inputs.len() > 1 && outputs.len() > 1 {
            return fail(
                l.line,
                "a link either distributes (one input) or joins (one output), not both",
            );
        }
        for &f in inputs.iter().chain(&outputs) {
            if let Some(prev) = linked.insert(f, links.len()) {
                return fail(
                    l.line,
                    format!(
                        "@{} is already in the link at line {}",
                        fifos[f].name, d.links[prev].line
                    ),
                );
            }
        }
        let link_tile = fifos[outputs[0]].producer;
        if tiles[link_tile].kind != TileKind::Mem {
            return fail(
                l.line,
                format!(
                    "links run on mem tiles; @{} is produced by {}",
                    fifos[outputs[0]].name, tiles[link_tile].name
                ),
            );
        }
        for &o in &outputs {
            if fifos[o].producer != link_tile {
                return fail(
                    l.line,
                    format!(
                        "@{} must be produced by the link tile {}",
                        fifos[o].name, tiles[link_tile].name
                    ),
                );
            }
        }
        for &i in &inputs {
            if fifos[i].consumers.len() != 1 || fifos[i].consumers[0].0 != link_tile {
                return fail(
                    l.line,
                    format!(
                        "@{} must have the link tile {} as its only consumer",
                        fifos[i].name, tiles[link_tile].name
                    ),
                );
            }
        }
        let join = inputs.len() > 1 || !l.src_offsets.is_empty();
        if !l.src_offsets.is_empty() && !l.dst_offsets.is_empty() {
            return fail(l.line, "give offsets on one side only (source offsets join, destination offsets distribute)");
        }
        let (big, small, offsets) = if join {
            (outputs[0], &inputs, &l.src_offsets)
        } else {
            (inputs[0], &outputs, &l.dst_offsets)
        };
        let big_elems = fifos[big].elem.elems();
        let elem = fifos[big].elem.clone();
        let mut pieces = Vec::new();
        if offsets.is_empty() {
            if small.len() != 1 {
                return fail(l.line, "a link of several FIFOs needs one offset per FIFO");
            }
            pieces.push((0, big_elems));
        } else {
            if offsets.len() != small.len() {
                return fail(
                    l.line,
                    format!(
                        "{} offsets for {} FIFOs: give one offset per FIFO",
                        offsets.len(),
                        small.len()
                    ),
                );
            }
            for w in offsets.windows(2) {
                if w[1] <= w[0] {
                    return fail(l.line, format!("offsets {offsets:?} do not increase: piece i spans offset[i]..offset[i+1], so they must be in increasing order"));
                }
            }
            if offsets[0] != 0 {
                return fail(l.line, format!("the first piece starts at {}, so elements 0..{} of each object are never moved; start at 0", offsets[0], offsets[0]));
            }
            for (i, &o) in offsets.iter().enumerate() {
                let end = offsets.get(i + 1).copied().unwrap_or(big_elems);
                if end > big_elems {
                    return fail(
                        l.line,
                        format!(
                            "offset {o} is past the {big_elems}-element object of @{}",
                            fifos[big].name
                        ),
                    );
                }
                pieces.push((o, end - o));
            }
        }
        for (i, &s) in small.iter().enumerate() {
            if fifos[s].elem.elem != elem.elem {
                return fail(
                    l.line,
                    format!(
                        "@{} carries {} but @{} carries {}",
                        fifos[s].name,
                        fifos[s].elem.elem.mlir(),
                        fifos[big].name,
                        elem.elem.mlir()
                    ),
                );
            }
            if fifos[s].elem.elems() != pieces[i].1 {
                return fail(l.line, format!("piece {i} of @{} spans {} elements (offsets {}..{}) but @{} objects hold {}: the pieces must match the FIFOs they feed", fifos[big].name, pieces[i].1, pieces[i].0, pieces[i].0 + pieces[i].1, fifos[s].name, fifos[s].elem.elems()));
            }
        }
        let li = links.len();
        let many = small.len() > 1 || !offsets.is_empty();
        for (i, &f) in inputs.iter().enumerate() {
            let piece = (join && many).then_some(i);
            fifos[f].consumers[0].1 = End::Link { link: li, piece };
        }
        for (i, &f) in outputs.iter().enumerate() {
            let piece = (!join && many).then_some(i);
            fifos[f].producer_end = End::Link { link: li, piece };
        }
        links.push(Link {
            line: l.line,
            tile: link_tile,
            inputs,
            outputs,
            pieces,
            elem,
            depth: fifos[big].depth,
            join,
        });
    }

    // FIFO ends on shim and mem tiles, and their layouts.
    for f in fifos.iter_mut() {
        match tiles[f.producer].kind {
            TileKind::Shim => f.producer_end = End::Host,
            TileKind::Mem if !matches!(f.producer_end, End::Link { .. }) => {
                return fail(f.line, format!("@{} starts on mem tile {} but is in no link: the emulator runs mem tiles only as link buffers", f.name, tiles[f.producer].name));
            }
            _ => {}
        }
        let n = f.consumers.len();
        for (t, end, _) in f.consumers.iter_mut() {
            match tiles[*t].kind {
                TileKind::Shim => *end = End::Host,
                TileKind::Mem if !matches!(end, End::Link { .. }) => {
                    return fail(
                        f.line,
                        format!(
                            "@{} ends on mem tile {} but is in no link",
                            f.name, tiles[*t].name
                        ),
                    );
                }
                _ => {}
            }
            if n > 1 && tiles[*t].kind != TileKind::Core {
                return fail(f.line, format!("@{} broadcasts to {} consumers; the emulator supports broadcast to cores only", f.name, n));
            }
        }
    }
    for f in &fifos {
        let piece_len = |end: End| match end {
            End::Link {
                link,
                piece: Some(p),
            } => links[link].pieces[p].1,
            _ => f.elem.elems(),
        };
        if let Some(dims) = &f.producer_dims {
            rules::check_dims(
                f,
                dims,
                &tiles[f.producer],
                piece_len(f.producer_end),
                "dimensionsToStream",
                &limits,
            )?;
        }
        for (t, end, dims) in &f.consumers {
            if let Some(dims) = dims {
                rules::check_dims(
                    f,
                    dims,
                    &tiles[*t],
                    piece_len(*end),
                    "dimensionsFromStream",
                    &limits,
                )?;
            }
        }
    }

    // Buffers.
    let mut buffers = Vec::new();
    let mut buffer_of: HashMap<String, usize> = HashMap::new();
    for b in &d.buffers {
        let t = tile(&b.tile, b.line)?;
        if tiles[t].kind != TileKind::Core {
            return fail(
                b.line,
                format!(
                    "aie.buffer on {}: the emulator supports buffers in core tiles",
                    tiles[t].name
                ),
            );
        }
        buffer_of.insert(b.ssa.clone(), buffers.len());
        buffers.push(Buffer {
            name: b.sym.clone().unwrap_or_else(|| b.ssa.clone()),
            tile: t,
            ty: b.ty.clone(),
        });
    }

    // Cores.
    let names = Names {
        fifos: &fifo_of,
        fifo_decls: &fifos,
        buffers: &buffer_of,
    };
    let mut cores = Vec::new();
    for c in &d.cores {
        let t = tile(&c.tile, c.line)?;
        if tiles[t].kind != TileKind::Core {
            return fail(
                c.line,
                format!("aie.core on {}, which is not a core tile", tiles[t].name),
            );
        }
        if cores.iter().any(|o: &Core| o.tile == t) {
            return fail(c.line, format!("{} has two aie.core bodies", tiles[t].name));
        }
        let prog = program::compile(&c.body, &names, c.line).map_err(|(l, m)| (Some(l), m))?;
        rules::check_core_ops(&prog, t, &tiles, &fifos, &funcs, &buffers)?;
        let stack = c.stack_size.unwrap_or(1024);
        rules::check_core_memory(t, c.line, stack, &tiles, &fifos, &buffers, &limits)?;
        cores.push(Core { tile: t, prog });
    }
    rules::check_memtile_memory(&tiles, &links, &fifos, &limits, d)?;

    // Runtime sequence.
    let s = d.sequence.as_ref().ok_or((
        Some(d.device_line),
        "the design has no aie.runtime_sequence".to_string(),
    ))?;
    let args: Vec<HostArg> = s
        .args
        .iter()
        .map(|(n, m)| HostArg {
            name: n.clone(),
            elem: m.elem,
            len: m.elems(),
        })
        .collect();
    if args.len() > 5 {
        return fail(
            s.line,
            format!(
                "{} host buffers; aiecc's kernel signature has 5 (bo0..bo4)",
                args.len()
            ),
        );
    }
    let mut seq = Vec::new();
    for op in &s.ops {
        seq.push(match op {
            ast::SeqOp::Memcpy {
                arg,
                offsets,
                sizes,
                strides,
                id,
                fifo: f,
                issue_token,
                line,
            } => {
                let a = args
                    .iter()
                    .position(|x| &x.name == arg)
                    .ok_or((Some(*line), format!("%{arg} is not a runtime-sequence argument")))?;
                let fi = fifo(f, *line)?;
                let host_end = fifos[fi].producer_end == End::Host
                    || fifos[fi].consumers.iter().any(|c| c.1 == End::Host);
                if !host_end {
                    return fail(*line, format!("@{f} has no shim end: the host can only feed or drain FIFOs that start or end on a shim tile"));
                }
                rules::check_memcpy(&args[a], sizes, strides, *id, &limits, *line)?;
                let base: usize = offsets.iter().zip(strides).map(|(o, t)| o * t).sum();
                let pattern = Pattern {
                    base,
                    dims: vec![(sizes[1], strides[1]), (sizes[2], strides[2]), (sizes[3], strides[3])],
                };
                let last = pattern.max_index().map(|m| m + (sizes[0] - 1) * strides[0]);
                if let Some(last) = last {
                    if last >= args[a].len {
                        return fail(*line, format!("the transfer reads or writes element {last} of %{arg}, which has {} elements: it runs past the end of its host buffer", args[a].len));
                    }
                }
                SeqOp::Memcpy {
                    arg: a,
                    pattern,
                    repeat: sizes[0],
                    repeat_stride: strides[0],
                    id: *id,
                    fifo: fi,
                    issue_token: *issue_token,
                    line: *line,
                }
            }
            ast::SeqOp::Wait { fifo: f, line } => SeqOp::Wait {
                fifo: fifo(f, *line)?,
                line: *line,
            },
            ast::SeqOp::RtpWrite {
                buffer,
                index,
                value,
                line,
            } => {
                let b = buffers
                    .iter()
                    .position(|x| &x.name == buffer)
                    .ok_or((Some(*line), format!("@{buffer} is not an aie.buffer of this design")))?;
                if (index + 1) * 4 > buffers[b].ty.bytes() {
                    return fail(*line, format!("word {index} is past the end of @{buffer} ({} bytes)", buffers[b].ty.bytes()));
                }
                SeqOp::RtpWrite {
                    buffer: b,
                    index: *index,
                    value: *value,
                    line: *line,
                }
            }
        });
    }
    Ok(Model {
        limits,
        tiles,
        fifos,
        links,
        buffers,
        cores,
        args,
        seq,
        seq_line: s.line,
    })
}

pub(crate) fn types(t: &[ArgType]) -> String {
    t.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
