//! Reads a design in the form MLIR printers and this project's templates write it: one op per
//! line, a region opened by a `{` ending its op's line and closed by a line starting with `}`
//! (which may carry the op's attributes, e.g. `} {stack_size = 2048 : i32}`).
//!
//! Only the ops the emulator executes are accepted; any other op is an error naming its line,
//! so that nothing a design does is silently skipped.

use super::ast::*;
use super::ops::*;
use super::token::{tokenize, Cursor};

/// A parse error: line (1-based) and message.
pub type ParseError = (usize, String);

struct Line {
    no: usize,
    text: String,
}

fn strip_comment(s: &str) -> &str {
    let mut in_str = false;
    let b = s.as_bytes();
    for i in 0..b.len() {
        match b[i] {
            b'"' => in_str = !in_str,
            b'/' if !in_str && b.get(i + 1) == Some(&b'/') => return &s[..i],
            _ => {}
        }
    }
    s
}

pub fn parse(text: &str) -> Result<Design, ParseError> {
    let lines: Vec<Line> = text
        .lines()
        .enumerate()
        .map(|(i, l)| Line {
            no: i + 1,
            text: strip_comment(l).trim().to_string(),
        })
        .filter(|l| !l.text.is_empty())
        .collect();
    let mut p = Parser { lines, pos: 0 };
    let first = p
        .next()
        .ok_or((1, "empty design: expected `module {`".to_string()))?;
    if first.1 != "module {" {
        return Err((
            first.0,
            format!("expected `module {{`, found `{}`", first.1),
        ));
    }
    let (dline, dtext) = p
        .next()
        .ok_or((first.0, "expected `aie.device(...) {`".to_string()))?;
    let device = parse_device_header(&dtext).map_err(|m| (dline, m))?;
    let mut design = Design {
        device,
        device_line: dline,
        funcs: Vec::new(),
        tiles: Vec::new(),
        fifos: Vec::new(),
        links: Vec::new(),
        buffers: Vec::new(),
        cores: Vec::new(),
        sequence: None,
    };
    p.device_body(&mut design)?;
    // `}` of the module.
    match p.next() {
        Some((_, t)) if t == "}" => {}
        Some((n, t)) => return Err((n, format!("expected `}}` closing the module, found `{t}`"))),
        None => return Err((dline, "the module is not closed".into())),
    }
    if let Some((n, t)) = p.next() {
        return Err((n, format!("unexpected `{t}` after the module")));
    }
    Ok(design)
}

fn parse_device_header(t: &str) -> Result<String, String> {
    let toks = tokenize(t)?;
    let mut c = Cursor::new(&toks);
    c.keyword("aie.device")?;
    c.punct('(')?;
    let d = c.ident()?.to_string();
    c.punct(')')?;
    c.punct('{')?;
    c.done()?;
    Ok(d)
}

struct Parser {
    lines: Vec<Line>,
    pos: usize,
}

impl Parser {
    fn next(&mut self) -> Option<(usize, String)> {
        let l = self.lines.get(self.pos)?;
        self.pos += 1;
        Some((l.no, l.text.clone()))
    }

    fn device_body(&mut self, d: &mut Design) -> Result<(), ParseError> {
        loop {
            let (no, text) = self
                .next()
                .ok_or((d.device_line, "the device region is not closed".to_string()))?;
            if text == "}" {
                return Ok(());
            }
            let toks = tokenize(&text).map_err(|m| (no, m))?;
            let mut c = Cursor::new(&toks);
            let res = result_name(&mut c);
            let op = c.ident().map_err(|m| (no, m))?.to_string();
            let e = |m: String| (no, format!("{op}: {m}"));
            match op.as_str() {
                "func.func" => d.funcs.push(func_decl(&mut c, no).map_err(e)?),
                "aie.tile" => d.tiles.push(tile(&mut c, res, no).map_err(e)?),
                "aie.objectfifo" => d.fifos.push(fifo(&mut c, no).map_err(e)?),
                "aie.objectfifo.link" => d.links.push(link(&mut c, no).map_err(e)?),
                "aie.buffer" => d.buffers.push(buffer(&mut c, res, no).map_err(e)?),
                "aie.core" => {
                    let tile = core_header(&mut c).map_err(e)?;
                    let (body, attrs) = self.core_block(no)?;
                    let stack_size = attr_int(&attrs, "stack_size").map_err(|m| (no, m))?;
                    d.cores.push(CoreDecl {
                        tile,
                        body,
                        stack_size,
                        line: no,
                    });
                }
                "aie.runtime_sequence" => {
                    if d.sequence.is_some() {
                        return Err((no, "a design has one runtime sequence".into()));
                    }
                    let args = seq_header(&mut c).map_err(e)?;
                    let ops = self.seq_block(no)?;
                    d.sequence = Some(SequenceDecl {
                        args,
                        ops,
                        line: no,
                    });
                }
                "aie.end" => {}
                _ => {
                    return Err((
                        no,
                        format!("`{op}` is not an op the emulator knows (it executes aie.tile, aie.objectfifo, aie.objectfifo.link, aie.buffer, aie.core, aie.runtime_sequence and func.func declarations)"),
                    ))
                }
            }
        }
    }

    /// Ops up to the closing `}`; returns them and the attribute text after the `}`.
    fn core_block(&mut self, open: usize) -> Result<(Vec<CoreOp>, String), ParseError> {
        let mut ops = Vec::new();
        loop {
            let (no, text) = self
                .next()
                .ok_or((open, "the region is not closed".to_string()))?;
            if let Some(rest) = text.strip_prefix('}') {
                return Ok((ops, rest.trim().to_string()));
            }
            let toks = tokenize(&text).map_err(|m| (no, m))?;
            let mut c = Cursor::new(&toks);
            let res = result_name(&mut c);
            let op = c.ident().map_err(|m| (no, m))?.to_string();
            let e = |m: String| (no, format!("{op}: {m}"));
            let need_res = || {
                res.clone()
                    .ok_or((no, format!("{op}: the result needs a name")))
            };
            let parsed = match op.as_str() {
                "arith.constant" => {
                    let value = c.int().map_err(e)?;
                    c.punct(':').map_err(e)?;
                    let ty = c.ident().map_err(e)?;
                    if !matches!(ty, "index" | "i32" | "i64") {
                        return Err(e(format!("constants of type {ty} are not supported")));
                    }
                    c.done().map_err(e)?;
                    CoreOp::Const {
                        res: need_res()?,
                        value,
                        line: no,
                    }
                }
                "arith.index_cast" => {
                    let src = c.ssa().map_err(e)?.to_string();
                    c.skip_rest();
                    CoreOp::Cast {
                        res: need_res()?,
                        src,
                        line: no,
                    }
                }
                "arith.addi" | "arith.subi" | "arith.muli" => {
                    let a = c.ssa().map_err(e)?.to_string();
                    c.punct(',').map_err(e)?;
                    let b = c.ssa().map_err(e)?.to_string();
                    c.skip_rest();
                    let bop = match op.as_str() {
                        "arith.addi" => BinOp::Add,
                        "arith.subi" => BinOp::Sub,
                        _ => BinOp::Mul,
                    };
                    CoreOp::Bin {
                        res: need_res()?,
                        op: bop,
                        a,
                        b,
                        line: no,
                    }
                }
                "scf.for" => {
                    let var = c.ssa().map_err(e)?.to_string();
                    c.punct('=').map_err(e)?;
                    let lb = c.ssa().map_err(e)?.to_string();
                    c.keyword("to").map_err(e)?;
                    let ub = c.ssa().map_err(e)?.to_string();
                    c.keyword("step").map_err(e)?;
                    let step = c.ssa().map_err(e)?.to_string();
                    c.punct('{').map_err(e)?;
                    c.done().map_err(e)?;
                    let (body, attrs) = self.core_block(no)?;
                    if !attrs.is_empty() {
                        return Err((no, format!("scf.for: unexpected `{attrs}` after the loop")));
                    }
                    CoreOp::For {
                        var,
                        lb,
                        ub,
                        step,
                        body,
                        line: no,
                    }
                }
                "aie.objectfifo.acquire" => {
                    let (fifo, port, n) = fifo_port(&mut c).map_err(e)?;
                    c.punct(':').map_err(e)?;
                    let ty = c
                        .wrapped_memref("aie.objectfifosubview")
                        .map_err(e)?
                        .clone();
                    c.done().map_err(e)?;
                    CoreOp::Acquire {
                        res: need_res()?,
                        fifo,
                        port,
                        n,
                        ty,
                        line: no,
                    }
                }
                "aie.objectfifo.subview.access" => {
                    let subview = c.ssa().map_err(e)?.to_string();
                    c.punct('[').map_err(e)?;
                    let index = c.uint().map_err(e)?;
                    c.punct(']').map_err(e)?;
                    c.skip_rest();
                    CoreOp::Access {
                        res: need_res()?,
                        subview,
                        index,
                        line: no,
                    }
                }
                "aie.objectfifo.release" => {
                    let (fifo, port, n) = fifo_port(&mut c).map_err(e)?;
                    c.done().map_err(e)?;
                    CoreOp::Release {
                        fifo,
                        port,
                        n,
                        line: no,
                    }
                }
                "func.call" => {
                    let func = c.sym().map_err(e)?.to_string();
                    c.punct('(').map_err(e)?;
                    let mut args = Vec::new();
                    if !c.eat_punct(')') {
                        loop {
                            args.push(c.ssa().map_err(e)?.to_string());
                            if c.eat_punct(')') {
                                break;
                            }
                            c.punct(',').map_err(e)?;
                        }
                    }
                    c.punct(':').map_err(e)?;
                    let types = arg_types(&mut c).map_err(e)?;
                    c.arrow().map_err(e)?;
                    c.punct('(').map_err(e)?;
                    c.punct(')').map_err(|_| e("core functions return nothing: expected `-> ()`".into()))?;
                    c.done().map_err(e)?;
                    if types.len() != args.len() {
                        return Err(e(format!(
                            "{} operands but {} types",
                            args.len(),
                            types.len()
                        )));
                    }
                    CoreOp::Call {
                        func,
                        args,
                        types,
                        line: no,
                    }
                }
                "aie.end" => CoreOp::End { line: no },
                _ => {
                    return Err((
                        no,
                        format!("`{op}` is not an op the emulator executes in a core (it knows arith.constant/index_cast/addi/subi/muli, scf.for, aie.objectfifo.acquire/subview.access/release, func.call, aie.end)"),
                    ))
                }
            };
            ops.push(parsed);
        }
    }

    fn seq_block(&mut self, open: usize) -> Result<Vec<SeqOp>, ParseError> {
        let mut ops = Vec::new();
        loop {
            let (no, text) = self
                .next()
                .ok_or((open, "the runtime sequence is not closed".to_string()))?;
            if let Some(rest) = text.strip_prefix('}') {
                if !rest.trim().is_empty() {
                    return Err((
                        no,
                        format!("unexpected `{}` after the runtime sequence", rest.trim()),
                    ));
                }
                return Ok(ops);
            }
            let toks = tokenize(&text).map_err(|m| (no, m))?;
            let mut c = Cursor::new(&toks);
            let op = c.ident().map_err(|m| (no, m))?.to_string();
            let e = |m: String| (no, format!("{op}: {m}"));
            ops.push(match op.as_str() {
                "aiex.npu.dma_memcpy_nd" => memcpy(&mut c, no).map_err(e)?,
                "aiex.npu.dma_wait" => {
                    c.punct('{').map_err(e)?;
                    c.keyword("symbol").map_err(e)?;
                    c.punct('=').map_err(e)?;
                    let fifo = c.sym().map_err(e)?.to_string();
                    c.punct('}').map_err(e)?;
                    c.done().map_err(e)?;
                    SeqOp::Wait { fifo, line: no }
                }
                "aiex.npu.rtp_write" => {
                    c.punct('(').map_err(e)?;
                    let buffer = c.sym().map_err(e)?.to_string();
                    c.punct(',').map_err(e)?;
                    let index = c.uint().map_err(e)?;
                    c.punct(',').map_err(e)?;
                    let value = c.int().map_err(e)?;
                    c.punct(')').map_err(e)?;
                    c.done().map_err(e)?;
                    SeqOp::RtpWrite {
                        buffer,
                        index,
                        value,
                        line: no,
                    }
                }
                _ => {
                    return Err((
                        no,
                        format!("`{op}` is not a runtime-sequence op the emulator executes (it knows aiex.npu.dma_memcpy_nd, aiex.npu.dma_wait, aiex.npu.rtp_write)"),
                    ))
                }
            });
        }
    }
}
