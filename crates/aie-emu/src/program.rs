//! A core body compiled into flat, resumable instructions: SSA values become registers, loops
//! become jumps, so that a core blocked on an acquire can stop and later continue where it was.

use std::collections::HashMap;

use aie_kernels::ArgType;

use crate::mlir::ast::{BinOp, CoreOp, Port};

pub type Reg = usize;

#[derive(Debug, Clone)]
pub enum Ins {
    Const {
        dst: Reg,
        value: i64,
    },
    Copy {
        dst: Reg,
        src: Reg,
    },
    Bin {
        dst: Reg,
        op: BinOp,
        a: Reg,
        b: Reg,
    },
    /// `var = lb`; jump to `exit` when `lb >= ub`.
    LoopStart {
        var: Reg,
        lb: Reg,
        ub: Reg,
        exit: usize,
    },
    /// `var += step`; jump back to `body` while `var < ub`.
    LoopNext {
        var: Reg,
        ub: Reg,
        step: Reg,
        body: usize,
    },
    Acquire {
        dst: Reg,
        fifo: usize,
        port: Port,
        n: usize,
    },
    Access {
        dst: Reg,
        subview: Reg,
        index: usize,
    },
    Release {
        fifo: usize,
        port: Port,
        n: usize,
    },
    Call {
        func: String,
        args: Vec<Reg>,
        types: Vec<ArgType>,
    },
    End,
}

#[derive(Debug, Clone)]
pub struct Program {
    pub code: Vec<Ins>,
    /// Source line of each instruction.
    pub lines: Vec<usize>,
    pub registers: usize,
    /// Registers preset to core-local buffers (`aie.buffer` of this tile), by buffer index.
    pub buffer_regs: Vec<(Reg, usize)>,
}

/// Name resolution the compiler needs from the design.
pub trait Names {
    fn fifo(&self, name: &str) -> Option<usize>;
    /// Element type of a FIFO.
    fn fifo_elem(&self, fifo: usize) -> &aie_kernels::MemType;
    /// Buffer index of an `aie.buffer` SSA name.
    fn buffer(&self, ssa: &str) -> Option<usize>;
}

struct Compiler<'a, N: Names> {
    names: &'a N,
    regs: HashMap<String, Reg>,
    code: Vec<Ins>,
    lines: Vec<usize>,
    buffer_regs: Vec<(Reg, usize)>,
}

impl<N: Names> Compiler<'_, N> {
    fn def(&mut self, name: &str, line: usize) -> Result<Reg, (usize, String)> {
        if self.regs.contains_key(name) {
            return Err((line, format!("%{name} is defined twice")));
        }
        let r = self.regs.len();
        self.regs.insert(name.to_string(), r);
        Ok(r)
    }

    fn use_(&mut self, name: &str, line: usize) -> Result<Reg, (usize, String)> {
        if let Some(&r) = self.regs.get(name) {
            return Ok(r);
        }
        if let Some(b) = self.names.buffer(name) {
            let r = self.regs.len();
            self.regs.insert(name.to_string(), r);
            self.buffer_regs.push((r, b));
            return Ok(r);
        }
        Err((line, format!("%{name} is not defined before its use")))
    }

    fn fifo(&self, name: &str, line: usize) -> Result<usize, (usize, String)> {
        self.names.fifo(name).ok_or((
            line,
            format!("@{name} is not an object FIFO of this design"),
        ))
    }

    fn emit(&mut self, ins: Ins, line: usize) {
        self.code.push(ins);
        self.lines.push(line);
    }

    fn block(&mut self, ops: &[CoreOp]) -> Result<(), (usize, String)> {
        for op in ops {
            match op {
                CoreOp::Const { res, value, line } => {
                    let dst = self.def(res, *line)?;
                    self.emit(Ins::Const { dst, value: *value }, *line);
                }
                CoreOp::Cast { res, src, line } => {
                    let src = self.use_(src, *line)?;
                    let dst = self.def(res, *line)?;
                    self.emit(Ins::Copy { dst, src }, *line);
                }
                CoreOp::Bin {
                    res,
                    op,
                    a,
                    b,
                    line,
                } => {
                    let a = self.use_(a, *line)?;
                    let b = self.use_(b, *line)?;
                    let dst = self.def(res, *line)?;
                    self.emit(Ins::Bin { dst, op: *op, a, b }, *line);
                }
                CoreOp::For {
                    var,
                    lb,
                    ub,
                    step,
                    body,
                    line,
                } => {
                    let lb = self.use_(lb, *line)?;
                    let ub = self.use_(ub, *line)?;
                    let step = self.use_(step, *line)?;
                    let var = self.def(var, *line)?;
                    let start = self.code.len();
                    self.emit(
                        Ins::LoopStart {
                            var,
                            lb,
                            ub,
                            exit: 0,
                        },
                        *line,
                    );
                    self.block(body)?;
                    self.emit(
                        Ins::LoopNext {
                            var,
                            ub,
                            step,
                            body: start + 1,
                        },
                        *line,
                    );
                    let exit = self.code.len();
                    if let Ins::LoopStart { exit: e, .. } = &mut self.code[start] {
                        *e = exit;
                    }
                }
                CoreOp::Acquire {
                    res,
                    fifo,
                    port,
                    n,
                    ty,
                    line,
                } => {
                    let name = fifo;
                    let fifo = self.fifo(fifo, *line)?;
                    let elem = self.names.fifo_elem(fifo);
                    if elem != ty {
                        return Err((
                            *line,
                            format!("acquires @{name} as {ty}, but its objects are {elem}"),
                        ));
                    }
                    let dst = self.def(res, *line)?;
                    self.emit(
                        Ins::Acquire {
                            dst,
                            fifo,
                            port: *port,
                            n: *n,
                        },
                        *line,
                    );
                }
                CoreOp::Access {
                    res,
                    subview,
                    index,
                    line,
                } => {
                    let subview = self.use_(subview, *line)?;
                    let dst = self.def(res, *line)?;
                    self.emit(
                        Ins::Access {
                            dst,
                            subview,
                            index: *index,
                        },
                        *line,
                    );
                }
                CoreOp::Release {
                    fifo,
                    port,
                    n,
                    line,
                } => {
                    let fifo = self.fifo(fifo, *line)?;
                    self.emit(
                        Ins::Release {
                            fifo,
                            port: *port,
                            n: *n,
                        },
                        *line,
                    );
                }
                CoreOp::Call {
                    func,
                    args,
                    types,
                    line,
                } => {
                    let args = args
                        .iter()
                        .map(|a| self.use_(a, *line))
                        .collect::<Result<Vec<_>, _>>()?;
                    self.emit(
                        Ins::Call {
                            func: func.clone(),
                            args,
                            types: types.clone(),
                        },
                        *line,
                    );
                }
                CoreOp::End { line } => self.emit(Ins::End, *line),
            }
        }
        Ok(())
    }
}

/// Compiles a core body. SSA names are scoped per core (as the designs print them).
pub fn compile<N: Names>(
    body: &[CoreOp],
    names: &N,
    line: usize,
) -> Result<Program, (usize, String)> {
    let mut c = Compiler {
        names,
        regs: HashMap::new(),
        code: Vec::new(),
        lines: Vec::new(),
        buffer_regs: Vec::new(),
    };
    c.block(body)?;
    if !matches!(c.code.last(), Some(Ins::End)) {
        c.emit(Ins::End, line);
    }
    Ok(Program {
        registers: c.regs.len(),
        code: c.code,
        lines: c.lines,
        buffer_regs: c.buffer_regs,
    })
}
