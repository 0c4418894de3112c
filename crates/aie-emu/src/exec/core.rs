//! One core running its program: integer arithmetic, loops, object-FIFO acquire / access /
//! release with the documented semantics, and calls into the core-function models.

use aie_kernels::{Arg, ArgType, CoreLibrary, MemType};

use crate::mlir::ast::{BinOp, Port};
use crate::model::Model;
use crate::program::Ins;

use super::store::Ring;

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Undef,
    Int(i64),
    /// Held objects (ring, slot), oldest first.
    Subview(Vec<(usize, usize)>),
    Mem(Buf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buf {
    /// An `aie.buffer`.
    Local(usize),
    Obj {
        ring: usize,
        slot: usize,
    },
}

pub struct CoreState {
    pub index: usize,
    pub pc: usize,
    pub regs: Vec<Val>,
    pub clock: f64,
    pub ended: bool,
    /// The first acquire the core reached in this run, with its integer registers then: the
    /// start of a call, before it has taken anything. After the run it must wait there again.
    pub rest: Option<(usize, Vec<Val>)>,
    pub calls: u64,
}

pub enum Step {
    /// Ran until it must wait (or ended); true when it executed anything.
    Blocked(bool),
    Failed(usize, String),
}

pub struct Env<'a> {
    pub model: &'a Model,
    pub lib: &'a CoreLibrary,
    pub rings: &'a mut [Ring],
    pub buffers: &'a mut [Vec<u32>],
    /// Ring index of (fifo, tile, consumer side).
    pub ring_of: &'a dyn Fn(usize, usize, bool) -> Option<usize>,
}

impl CoreState {
    pub fn new(index: usize, model: &Model) -> CoreState {
        let core = &model.cores[index];
        let mut regs = vec![Val::Undef; core.prog.registers];
        for &(r, b) in &core.prog.buffer_regs {
            regs[r] = Val::Mem(Buf::Local(b));
        }
        CoreState {
            index,
            pc: 0,
            regs,
            clock: 0.0,
            ended: false,
            rest: None,
            calls: 0,
        }
    }

    fn int(&self, r: usize) -> i64 {
        match self.regs[r] {
            Val::Int(v) => v,
            _ => 0,
        }
    }

    /// Integer registers (loop counters of loops that run forever left out) for the rest check.
    pub fn snapshot(&self, env_model: &Model) -> Vec<Val> {
        let prog = &env_model.cores[self.index].prog;
        let mut forever = vec![false; self.regs.len()];
        for ins in &prog.code {
            if let Ins::LoopStart { var, ub, .. } = ins {
                if self.int(*ub) == i64::MAX {
                    forever[*var] = true;
                }
            }
        }
        self.regs
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Val::Int(_) if !forever[i] => v.clone(),
                _ => Val::Undef,
            })
            .collect()
    }

    pub fn run(&mut self, env: &mut Env<'_>, cycles: &dyn Fn(&str) -> u64) -> Step {
        let core = &env.model.cores[self.index];
        let tile = core.tile;
        let mut ran = false;
        while !self.ended {
            let line = core.prog.lines[self.pc];
            let fail = |m: String| Step::Failed(line, m);
            match &core.prog.code[self.pc] {
                Ins::Const { dst, value } => self.regs[*dst] = Val::Int(*value),
                Ins::Copy { dst, src } => self.regs[*dst] = self.regs[*src].clone(),
                Ins::Bin { dst, op, a, b } => {
                    let (a, b) = (self.int(*a), self.int(*b));
                    let v = match op {
                        BinOp::Add => a.wrapping_add(b),
                        BinOp::Sub => a.wrapping_sub(b),
                        BinOp::Mul => a.wrapping_mul(b),
                    };
                    self.regs[*dst] = Val::Int(v);
                }
                Ins::LoopStart { var, lb, ub, exit } => {
                    let lb = self.int(*lb);
                    self.regs[*var] = Val::Int(lb);
                    if lb >= self.int(*ub) {
                        self.pc = *exit;
                        continue;
                    }
                }
                Ins::LoopNext {
                    var,
                    ub,
                    step,
                    body,
                } => {
                    let v = self.int(*var).saturating_add(self.int(*step));
                    self.regs[*var] = Val::Int(v);
                    if v < self.int(*ub) {
                        self.pc = *body;
                        continue;
                    }
                }
                Ins::Acquire { dst, fifo, port, n } => {
                    if self.rest.is_none() {
                        self.rest = Some((self.pc, self.snapshot(env.model)));
                    }
                    let consumer = *port == Port::Consume;
                    let r = (env.ring_of)(*fifo, tile, consumer).expect("checked by the model");
                    let ring = &mut env.rings[r];
                    if let Some(&(_, first)) = ring.held.front() {
                        let name = &env.model.fifos[*fifo].name;
                        return fail(format!("acquires @{name} while still holding {} object(s) of it (acquired at line {first}): aiecc counts held objects statically and would take new locks on every loop iteration; release before acquiring again", ring.held.len()));
                    }
                    let depth = ring.objs.len();
                    let slots: Vec<usize> = (0..*n).map(|i| (ring.core_ptr + i) % depth).collect();
                    if !slots.iter().all(|&s| ring.core_ready(s)) {
                        return Step::Blocked(ran);
                    }
                    for &s in &slots {
                        self.clock = self.clock.max(ring.objs[s].t);
                        ring.held.push_back((s, line));
                    }
                    ring.core_ptr = (ring.core_ptr + n) % depth;
                    self.regs[*dst] = Val::Subview(slots.into_iter().map(|s| (r, s)).collect());
                }
                Ins::Access {
                    dst,
                    subview,
                    index,
                } => {
                    let Val::Subview(objs) = &self.regs[*subview] else {
                        return fail("accesses a value that is not an acquired subview".into());
                    };
                    let Some(&(ring, slot)) = objs.get(*index) else {
                        return fail(format!(
                            "accesses object {index} of a subview of {}",
                            objs.len()
                        ));
                    };
                    self.regs[*dst] = Val::Mem(Buf::Obj { ring, slot });
                }
                Ins::Release { fifo, port, n } => {
                    let consumer = *port == Port::Consume;
                    let r = (env.ring_of)(*fifo, tile, consumer).expect("checked by the model");
                    let ring = &mut env.rings[r];
                    if ring.held.len() < *n {
                        let name = &env.model.fifos[*fifo].name;
                        return fail(format!("releases {n} object(s) of @{name} but holds {}: a release needs a matching acquire", ring.held.len()));
                    }
                    for _ in 0..*n {
                        let (s, _) = ring.held.pop_front().expect("counted");
                        let o = &mut ring.objs[s];
                        // A consumer frees the object; a producer hands it to the DMA.
                        o.full = !consumer;
                        o.t = self.clock;
                    }
                }
                Ins::Call { func, args, types } => {
                    if let Err(m) = self.call(env, func, args, types) {
                        return fail(m);
                    }
                    self.clock += cycles(func) as f64;
                    self.calls += 1;
                }
                Ins::End => {
                    self.ended = true;
                    return Step::Blocked(true);
                }
            }
            ran = true;
            self.pc += 1;
        }
        Step::Blocked(ran)
    }

    fn call(
        &self,
        env: &mut Env<'_>,
        func: &str,
        args: &[usize],
        types: &[ArgType],
    ) -> Result<(), String> {
        let f = env
            .lib
            .get(func)
            .ok_or_else(|| format!("@{func} has no model"))?;
        // Take the buffers out of their stores for the call and put them back afterwards.
        let mut taken: Vec<(Buf, Vec<u32>, usize)> = Vec::new();
        let mut scalars: Vec<Option<i32>> = Vec::new();
        for (k, (&r, ty)) in args.iter().zip(types).enumerate() {
            match (&self.regs[r], ty) {
                (Val::Mem(b), ArgType::Mem(want)) => {
                    let (have, bytes): (&MemType, usize) = match *b {
                        Buf::Local(i) => {
                            (&env.model.buffers[i].ty, env.model.buffers[i].ty.bytes())
                        }
                        Buf::Obj { ring, .. } => {
                            let fi = env.rings[ring].fifo;
                            (&env.model.fifos[fi].elem, env.rings[ring].obj_bytes)
                        }
                    };
                    if have != want {
                        put_back(env, taken);
                        return Err(format!(
                            "operand {k} of @{func} is a {have}, the call passes it as {want}"
                        ));
                    }
                    if taken.iter().any(|t| t.0 == *b) {
                        put_back(env, taken);
                        return Err(format!("@{func} gets the same buffer twice (operand {k})"));
                    }
                    let data = match *b {
                        Buf::Local(i) => std::mem::take(&mut env.buffers[i]),
                        Buf::Obj { ring, slot } => {
                            std::mem::take(&mut env.rings[ring].objs[slot].data)
                        }
                    };
                    taken.push((*b, data, bytes));
                    scalars.push(None);
                }
                (Val::Int(v), ArgType::I32) => scalars.push(Some(*v as i32)),
                (v, t) => {
                    put_back(env, taken);
                    return Err(format!("operand {k} of @{func} should be {t}, found {v:?}"));
                }
            }
        }
        let result = {
            let mut mems = taken.iter_mut();
            let mut call_args: Vec<Arg<'_>> = Vec::with_capacity(args.len());
            for s in &scalars {
                match s {
                    Some(v) => call_args.push(Arg::I32(*v)),
                    None => {
                        let (_, data, bytes) = mems.next().expect("one per memory operand");
                        let bytes = *bytes;
                        call_args.push(Arg::Mem(
                            &mut bytemuck::cast_slice_mut(data.as_mut_slice())[..bytes],
                        ));
                    }
                }
            }
            f.call(&mut call_args)
        };
        put_back(env, taken);
        result.map_err(|e| format!("@{func}: {e}"))
    }
}

fn put_back(env: &mut Env<'_>, taken: Vec<(Buf, Vec<u32>, usize)>) {
    for (b, data, _) in taken {
        match b {
            Buf::Local(i) => env.buffers[i] = data,
            Buf::Obj { ring, slot } => env.rings[ring].objs[slot].data = data,
        }
    }
}
