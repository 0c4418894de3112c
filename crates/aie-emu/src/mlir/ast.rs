//! The ops of a rendered design, as written (names still unresolved). Every op keeps its
//! 1-based line so that errors can point at it.

use aie_kernels::{ArgType, MemType};

/// `<size = s, stride = t>` dimensions, outermost first, in elements.
pub type Dims = Vec<(usize, usize)>;

#[derive(Debug, Clone)]
pub struct Design {
    pub device: String,
    pub device_line: usize,
    pub funcs: Vec<FuncDecl>,
    pub tiles: Vec<TileDecl>,
    pub fifos: Vec<FifoDecl>,
    pub links: Vec<LinkDecl>,
    pub buffers: Vec<BufferDecl>,
    pub cores: Vec<CoreDecl>,
    pub sequence: Option<SequenceDecl>,
}

#[derive(Debug, Clone)]
pub struct FuncDecl {
    pub name: String,
    pub sig: Vec<ArgType>,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct TileDecl {
    pub ssa: String,
    pub col: usize,
    pub row: usize,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct FifoDecl {
    pub name: String,
    pub producer: String,
    pub producer_dims: Option<Dims>,
    /// Consumer tiles with their `dimensionsFromStream` (if any).
    pub consumers: Vec<(String, Option<Dims>)>,
    pub depth: usize,
    pub elem: MemType,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct LinkDecl {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub src_offsets: Vec<usize>,
    pub dst_offsets: Vec<usize>,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct BufferDecl {
    pub ssa: String,
    pub tile: String,
    pub sym: Option<String>,
    pub ty: MemType,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct CoreDecl {
    pub tile: String,
    pub body: Vec<CoreOp>,
    pub stack_size: Option<usize>,
    pub line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Produce,
    Consume,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
}

#[derive(Debug, Clone)]
pub enum CoreOp {
    Const {
        res: String,
        value: i64,
        line: usize,
    },
    /// `arith.index_cast` (values are plain integers here).
    Cast {
        res: String,
        src: String,
        line: usize,
    },
    Bin {
        res: String,
        op: BinOp,
        a: String,
        b: String,
        line: usize,
    },
    For {
        var: String,
        lb: String,
        ub: String,
        step: String,
        body: Vec<CoreOp>,
        line: usize,
    },
    Acquire {
        res: String,
        fifo: String,
        port: Port,
        n: usize,
        ty: MemType,
        line: usize,
    },
    Access {
        res: String,
        subview: String,
        index: usize,
        line: usize,
    },
    Release {
        fifo: String,
        port: Port,
        n: usize,
        line: usize,
    },
    Call {
        func: String,
        args: Vec<String>,
        types: Vec<ArgType>,
        line: usize,
    },
    End {
        line: usize,
    },
}

#[derive(Debug, Clone)]
pub struct SequenceDecl {
    pub args: Vec<(String, MemType)>,
    pub ops: Vec<SeqOp>,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub enum SeqOp {
    Memcpy {
        arg: String,
        offsets: [usize; 4],
        sizes: [usize; 4],
        strides: [usize; 4],
        id: usize,
        fifo: String,
        issue_token: bool,
        line: usize,
    },
    Wait {
        fifo: String,
        line: usize,
    },
    RtpWrite {
        buffer: String,
        index: usize,
        value: i64,
        line: usize,
    },
}
