//! Tokens of one MLIR op line.

use aie_kernels::{Elem, MemType};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// `%name` (without the `%`).
    Ssa(String),
    /// `@name` (without the `@`).
    Sym(String),
    /// A bare identifier, dotted names included (`aie.objectfifo.link`, `Consume`, `index`).
    Ident(String),
    Int(i64),
    Str(String),
    /// `memref<8x32xbf16>`.
    MemRef(MemType),
    /// `->`.
    Arrow,
    Punct(char),
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Ssa(s) => write!(f, "%{s}"),
            Tok::Sym(s) => write!(f, "@{s}"),
            Tok::Ident(s) => write!(f, "{s}"),
            Tok::Int(i) => write!(f, "{i}"),
            Tok::Str(s) => write!(f, "\"{s}\""),
            Tok::MemRef(m) => write!(f, "{m}"),
            Tok::Arrow => write!(f, "->"),
            Tok::Punct(c) => write!(f, "{c}"),
        }
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$'
}

/// Splits `text` (one op, comments already removed) into tokens.
pub fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && is_ident_char(chars[*i]) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '%' || c == '@' {
            i += 1;
            let w = word(&mut i);
            if w.is_empty() {
                return Err(format!("`{c}` must be followed by a name"));
            }
            out.push(if c == '%' { Tok::Ssa(w) } else { Tok::Sym(w) });
        } else if c == '"' {
            let start = i + 1;
            i = start;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            if i == chars.len() {
                return Err("unterminated string".into());
            }
            out.push(Tok::Str(chars[start..i].iter().collect()));
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'>') {
            out.push(Tok::Arrow);
            i += 2;
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let v = s
                .parse::<i64>()
                .map_err(|_| format!("integer `{s}` out of range"))?;
            out.push(Tok::Int(v));
        } else if is_ident_char(c) {
            let w = word(&mut i);
            if w == "memref" && chars.get(i) == Some(&'<') {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&c| c == '>')
                    .map(|p| start + p)
                    .ok_or("unterminated memref type")?;
                let body: String = chars[start..end].iter().collect();
                out.push(Tok::MemRef(parse_memref(&body)?));
                i = end + 1;
            } else {
                out.push(Tok::Ident(w));
            }
        } else if "()[]{}<>,:=!?*+".contains(c) {
            out.push(Tok::Punct(c));
            i += 1;
        } else {
            return Err(format!("unexpected character `{c}`"));
        }
    }
    Ok(out)
}

/// `8x32xbf16` → shape [8, 32], bf16.
fn parse_memref(body: &str) -> Result<MemType, String> {
    let parts: Vec<&str> = body.split('x').collect();
    let (elem, dims) = parts.split_last().ok_or("empty memref type")?;
    let elem = Elem::from_mlir(elem.trim()).ok_or_else(|| {
        format!("memref<{body}>: element type `{elem}` is not one of bf16, f32, i8, i32")
    })?;
    let shape = dims
        .iter()
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .map_err(|_| format!("memref<{body}>: dimension `{d}` is not a static size"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if shape.is_empty() {
        return Err(format!(
            "memref<{body}>: a buffer needs at least one dimension"
        ));
    }
    Ok(MemType { shape, elem })
}

/// A cursor over the tokens of one op, with errors that quote what was expected.
pub struct Cursor<'a> {
    toks: &'a [Tok],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(toks: &'a [Tok]) -> Cursor<'a> {
        Cursor { toks, pos: 0 }
    }

    pub fn peek(&self) -> Option<&'a Tok> {
        self.toks.get(self.pos)
    }

    pub fn peek_at(&self, ahead: usize) -> Option<&'a Tok> {
        self.toks.get(self.pos + ahead)
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    pub fn next(&mut self) -> Option<&'a Tok> {
        let t = self.toks.get(self.pos);
        self.pos += 1;
        t
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(t) => format!("`{t}`"),
            None => "the end of the line".into(),
        }
    }

    pub fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    pub fn eat_punct(&mut self, c: char) -> bool {
        if self.is_punct(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub fn punct(&mut self, c: char) -> Result<(), String> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(format!("expected `{c}`, found {}", self.found()))
        }
    }

    pub fn arrow(&mut self) -> Result<(), String> {
        if self.peek() == Some(&Tok::Arrow) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `->`, found {}", self.found()))
        }
    }

    pub fn ident(&mut self) -> Result<&'a str, String> {
        match self.peek() {
            Some(Tok::Ident(s)) => {
                self.pos += 1;
                Ok(s)
            }
            _ => Err(format!("expected a name, found {}", self.found())),
        }
    }

    pub fn keyword(&mut self, k: &str) -> Result<(), String> {
        match self.peek() {
            Some(Tok::Ident(s)) if s == k => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(format!("expected `{k}`, found {}", self.found())),
        }
    }

    pub fn eat_keyword(&mut self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s == k) && {
            self.pos += 1;
            true
        }
    }

    pub fn ssa(&mut self) -> Result<&'a str, String> {
        match self.peek() {
            Some(Tok::Ssa(s)) => {
                self.pos += 1;
                Ok(s)
            }
            _ => Err(format!(
                "expected an SSA value `%name`, found {}",
                self.found()
            )),
        }
    }

    pub fn sym(&mut self) -> Result<&'a str, String> {
        match self.peek() {
            Some(Tok::Sym(s)) => {
                self.pos += 1;
                Ok(s)
            }
            _ => Err(format!("expected a symbol `@name`, found {}", self.found())),
        }
    }

    pub fn int(&mut self) -> Result<i64, String> {
        match self.peek() {
            Some(Tok::Int(v)) => {
                self.pos += 1;
                Ok(*v)
            }
            _ => Err(format!("expected an integer, found {}", self.found())),
        }
    }

    pub fn uint(&mut self) -> Result<usize, String> {
        let v = self.int()?;
        usize::try_from(v).map_err(|_| format!("expected a non-negative integer, found {v}"))
    }

    pub fn string(&mut self) -> Result<&'a str, String> {
        match self.peek() {
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(s)
            }
            _ => Err(format!("expected a string, found {}", self.found())),
        }
    }

    pub fn memref(&mut self) -> Result<&'a MemType, String> {
        match self.peek() {
            Some(Tok::MemRef(m)) => {
                self.pos += 1;
                Ok(m)
            }
            _ => Err(format!("expected a memref type, found {}", self.found())),
        }
    }

    /// `!aie.objectfifo<memref<..>>` or `!aie.objectfifosubview<memref<..>>`.
    pub fn wrapped_memref(&mut self, wrapper: &str) -> Result<&'a MemType, String> {
        self.punct('!')?;
        self.keyword(wrapper)?;
        self.punct('<')?;
        let m = self.memref()?;
        self.punct('>')?;
        Ok(m)
    }

    /// Skips a balanced `{...}` / `[...]` / `(...)` group starting at the cursor.
    pub fn skip_group(&mut self) -> Result<(), String> {
        let open = match self.next() {
            Some(Tok::Punct(c @ ('{' | '[' | '('))) => *c,
            _ => return Err("expected a group".into()),
        };
        let close = match open {
            '{' => '}',
            '[' => ']',
            _ => ')',
        };
        let mut depth = 1;
        while depth > 0 {
            match self.next() {
                Some(Tok::Punct(c)) if *c == open => depth += 1,
                Some(Tok::Punct(c)) if *c == close => depth -= 1,
                Some(_) => {}
                None => return Err(format!("unbalanced `{open}`")),
            }
        }
        Ok(())
    }

    /// Ignores the rest of the op (type annotations the emulator does not need).
    pub fn skip_rest(&mut self) {
        while self.next().is_some() {}
    }

    pub fn done(&self) -> Result<(), String> {
        if self.at_end() {
            Ok(())
        } else {
            Err(format!("unexpected {} after the op", self.found()))
        }
    }
}
