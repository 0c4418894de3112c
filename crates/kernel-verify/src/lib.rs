//! MLIR (melior) reference of every kernel spec entry, JIT-run and compared with the CPU backend.
