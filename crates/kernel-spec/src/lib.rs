//! Kernel spec format, npu1/npu2 device model, resource checks, rendering and manifest types.
