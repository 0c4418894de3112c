//! One kernel API over the CPU backend and the XRT NPU backend.
