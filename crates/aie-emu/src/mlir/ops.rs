//! Parsers of single ops: their operands, attributes and types, from one line's tokens.

use aie_kernels::ArgType;

use super::ast::*;
use super::token::{tokenize, Cursor, Tok};

/// `%name =` at the start of an op.
pub(super) fn result_name(c: &mut Cursor<'_>) -> Option<String> {
    match (c.peek(), c.peek_at(1)) {
        (Some(Tok::Ssa(s)), Some(Tok::Punct('='))) => {
            let s = s.clone();
            c.next();
            c.next();
            Some(s)
        }
        _ => None,
    }
}

pub(super) fn func_decl(c: &mut Cursor<'_>, line: usize) -> Result<FuncDecl, String> {
    c.keyword("private")?;
    let name = c.sym()?.to_string();
    let sig = arg_types(c)?;
    if c.eat_keyword("attributes") {
        c.skip_group()?;
    }
    c.done()?;
    Ok(FuncDecl { name, sig, line })
}

/// `(memref<..>, i32, ...)`.
pub(super) fn arg_types(c: &mut Cursor<'_>) -> Result<Vec<ArgType>, String> {
    c.punct('(')?;
    let mut v = Vec::new();
    if c.eat_punct(')') {
        return Ok(v);
    }
    loop {
        match c.peek() {
            Some(Tok::MemRef(m)) => {
                v.push(ArgType::Mem(m.clone()));
                c.next();
            }
            Some(Tok::Ident(s)) if s == "i32" => {
                v.push(ArgType::I32);
                c.next();
            }
            Some(t) => {
                return Err(format!(
                    "argument type `{t}` is not supported (memref or i32)"
                ))
            }
            None => return Err("unterminated argument list".into()),
        }
        if c.eat_punct(')') {
            return Ok(v);
        }
        c.punct(',')?;
    }
}

pub(super) fn tile(
    c: &mut Cursor<'_>,
    res: Option<String>,
    line: usize,
) -> Result<TileDecl, String> {
    c.punct('(')?;
    let col = c.uint()?;
    c.punct(',')?;
    let row = c.uint()?;
    c.punct(')')?;
    c.done()?;
    Ok(TileDecl {
        ssa: res.ok_or("the tile needs a name")?,
        col,
        row,
        line,
    })
}

pub(super) fn dims(c: &mut Cursor<'_>) -> Result<Dims, String> {
    c.punct('[')?;
    let mut v = Vec::new();
    if c.eat_punct(']') {
        return Ok(v);
    }
    loop {
        c.punct('<')?;
        c.keyword("size")?;
        c.punct('=')?;
        let size = c.uint()?;
        c.punct(',')?;
        c.keyword("stride")?;
        c.punct('=')?;
        let stride = c.uint()?;
        c.punct('>')?;
        v.push((size, stride));
        if c.eat_punct(']') {
            return Ok(v);
        }
        c.punct(',')?;
    }
}

pub(super) fn fifo(c: &mut Cursor<'_>, line: usize) -> Result<FifoDecl, String> {
    let name = c.sym()?.to_string();
    c.punct('(')?;
    let producer = c.ssa()?.to_string();
    let producer_dims = if c.eat_keyword("dimensionsToStream") {
        Some(dims(c)?)
    } else {
        None
    };
    c.punct(',')?;
    c.punct('{')?;
    let mut consumers = Vec::new();
    loop {
        let t = c.ssa()?.to_string();
        let d = if c.eat_keyword("dimensionsFromStream") {
            Some(dims(c)?)
        } else {
            None
        };
        consumers.push((t, d));
        if c.eat_punct('}') {
            break;
        }
        c.punct(',')?;
    }
    c.punct(',')?;
    if c.is_punct('[') {
        return Err("per-end depth arrays are not supported by the emulator; use one depth".into());
    }
    let depth = c.uint()?;
    c.punct(':')?;
    c.keyword("i32")?;
    c.punct(')')?;
    if c.is_punct('{') {
        return Err("object-FIFO attributes (via_DMA, repeat_count, init_values, ...) are not supported by the emulator".into());
    }
    c.punct(':')?;
    let elem = c.wrapped_memref("aie.objectfifo")?.clone();
    c.done()?;
    Ok(FifoDecl {
        name,
        producer,
        producer_dims,
        consumers,
        depth,
        elem,
        line,
    })
}

pub(super) fn sym_list(c: &mut Cursor<'_>) -> Result<Vec<String>, String> {
    c.punct('[')?;
    let mut v = Vec::new();
    if c.eat_punct(']') {
        return Ok(v);
    }
    loop {
        v.push(c.sym()?.to_string());
        if c.eat_punct(']') {
            return Ok(v);
        }
        c.punct(',')?;
    }
}

pub(super) fn int_list(c: &mut Cursor<'_>) -> Result<Vec<usize>, String> {
    c.punct('[')?;
    let mut v = Vec::new();
    if c.eat_punct(']') {
        return Ok(v);
    }
    loop {
        v.push(c.uint()?);
        if c.eat_punct(']') {
            return Ok(v);
        }
        c.punct(',')?;
    }
}

pub(super) fn link(c: &mut Cursor<'_>, line: usize) -> Result<LinkDecl, String> {
    let inputs = sym_list(c)?;
    c.arrow()?;
    let outputs = sym_list(c)?;
    c.punct('(')?;
    let src_offsets = int_list(c)?;
    let dst_offsets = int_list(c)?;
    c.punct(')')?;
    c.done()?;
    Ok(LinkDecl {
        inputs,
        outputs,
        src_offsets,
        dst_offsets,
        line,
    })
}

pub(super) fn buffer(
    c: &mut Cursor<'_>,
    res: Option<String>,
    line: usize,
) -> Result<BufferDecl, String> {
    c.punct('(')?;
    let tile = c.ssa()?.to_string();
    c.punct(')')?;
    let mut sym = None;
    if c.eat_punct('{') {
        loop {
            let key = c.ident()?;
            c.punct('=')?;
            match key {
                "sym_name" => sym = Some(c.string()?.to_string()),
                other => return Err(format!("buffer attribute `{other}` is not supported")),
            }
            if c.eat_punct('}') {
                break;
            }
            c.punct(',')?;
        }
    }
    c.punct(':')?;
    let ty = c.memref()?.clone();
    c.done()?;
    Ok(BufferDecl {
        ssa: res.ok_or("the buffer needs a name")?,
        tile,
        sym,
        ty,
        line,
    })
}

pub(super) fn core_header(c: &mut Cursor<'_>) -> Result<String, String> {
    c.punct('(')?;
    let t = c.ssa()?.to_string();
    c.punct(')')?;
    c.punct('{')?;
    c.done()?;
    Ok(t)
}

pub(super) fn seq_header(
    c: &mut Cursor<'_>,
) -> Result<Vec<(String, aie_kernels::MemType)>, String> {
    c.punct('(')?;
    let mut v = Vec::new();
    if !c.eat_punct(')') {
        loop {
            let n = c.ssa()?.to_string();
            c.punct(':')?;
            let m = c.memref()?.clone();
            if m.shape.len() != 1 {
                return Err(format!("host buffer %{n} must be 1-D, found {m}"));
            }
            v.push((n, m));
            if c.eat_punct(')') {
                break;
            }
            c.punct(',')?;
        }
    }
    c.punct('{')?;
    c.done()?;
    Ok(v)
}

/// `@fifo(Consume, 1)`.
pub(super) fn fifo_port(c: &mut Cursor<'_>) -> Result<(String, Port, usize), String> {
    let fifo = c.sym()?.to_string();
    c.punct('(')?;
    let port = match c.ident()? {
        "Produce" => Port::Produce,
        "Consume" => Port::Consume,
        p => return Err(format!("port `{p}` is neither Produce nor Consume")),
    };
    c.punct(',')?;
    let n = c.uint()?;
    c.punct(')')?;
    Ok((fifo, port, n))
}

pub(super) fn four(c: &mut Cursor<'_>, what: &str) -> Result<[usize; 4], String> {
    let v = int_list(c)?;
    v.try_into()
        .map_err(|v: Vec<usize>| format!("{what} must have 4 entries, found {}", v.len()))
}

pub(super) fn memcpy(c: &mut Cursor<'_>, line: usize) -> Result<SeqOp, String> {
    c.punct('(')?;
    let arg = c.ssa()?.to_string();
    let offsets = four(c, "offsets")?;
    let sizes = four(c, "sizes")?;
    let strides = four(c, "strides")?;
    c.punct(')')?;
    c.punct('{')?;
    let (mut id, mut fifo, mut issue_token) = (None, None, false);
    loop {
        let key = c.ident()?;
        c.punct('=')?;
        match key {
            "id" => {
                id = Some(c.uint()?);
                c.punct(':')?;
                c.ident()?;
            }
            "metadata" => fifo = Some(c.sym()?.to_string()),
            "issue_token" => {
                issue_token = match c.ident()? {
                    "true" => true,
                    "false" => false,
                    v => return Err(format!("issue_token = {v}: expected true or false")),
                }
            }
            other => return Err(format!("attribute `{other}` is not supported")),
        }
        if c.eat_punct('}') {
            break;
        }
        c.punct(',')?;
    }
    c.punct(':')?;
    c.memref()?;
    c.done()?;
    Ok(SeqOp::Memcpy {
        arg,
        offsets,
        sizes,
        strides,
        id: id.ok_or("needs an `id` (the shim buffer descriptor)")?,
        fifo: fifo.ok_or("needs `metadata = @fifo`")?,
        issue_token,
        line,
    })
}

/// `{key = 123 : i32, ...}` → the integer value of `key`.
pub(super) fn attr_int(attrs: &str, key: &str) -> Result<Option<usize>, String> {
    if attrs.is_empty() {
        return Ok(None);
    }
    let toks = tokenize(attrs)?;
    let mut c = Cursor::new(&toks);
    c.punct('{')?;
    let mut found = None;
    loop {
        let k = c.ident()?.to_string();
        c.punct('=')?;
        if k == key {
            found = Some(c.uint()?);
        } else {
            c.next();
        }
        if c.eat_punct(':') {
            c.ident()?;
        }
        if c.eat_punct('}') {
            break;
        }
        c.punct(',')?;
    }
    c.done()?;
    Ok(found)
}
