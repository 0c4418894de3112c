//! Reading rendered designs: tokens, ops, and the op tree with line numbers.

pub mod ast;
mod ops;
pub mod parse;
pub mod token;
