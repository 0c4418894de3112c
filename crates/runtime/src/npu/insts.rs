//! Reading aiecc's NPU instruction stream and naming the NPU generation.

use std::path::Path;

use kernel_spec::Device;

use crate::RuntimeError;

/// The NPU instruction stream: aiecc's binary (little-endian u32 words) or text (one hex word
/// per line).
pub(crate) fn read_insts(path: &Path) -> Result<Vec<u32>, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|e| {
        RuntimeError::Npu(format!(
            "{}: {e}; rebuild with `cargo xtask build-kernels`",
            path.display()
        ))
    })?;
    parse_insts(path, &bytes)
}

fn parse_insts(path: &Path, bytes: &[u8]) -> Result<Vec<u32>, RuntimeError> {
    if path.extension().is_some_and(|e| e == "txt") {
        let text = String::from_utf8_lossy(bytes);
        return text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                u32::from_str_radix(l.trim_start_matches("0x"), 16)
                    .map_err(|e| RuntimeError::Npu(format!("{}: \"{l}\": {e}", path.display())))
            })
            .collect();
    }
    if !bytes.len().is_multiple_of(4) || bytes.is_empty() {
        return Err(RuntimeError::Npu(format!(
            "{}: {} bytes is not a whole number of 32-bit instruction words",
            path.display(),
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect())
}

/// `npu1` for Phoenix / Hawk Point, `npu2` for Strix / Krackan, from XRT's device name.
pub(crate) fn device_of(name: &str) -> Device {
    let n = name.to_ascii_lowercase();
    if ["strix", "krackan", "npu4", "npu5", "npu6"]
        .iter()
        .any(|s| n.contains(s))
    {
        Device::Npu2
    } else {
        if !["phoenix", "hawk", "npu1"].iter().any(|s| n.contains(s)) {
            tracing::warn!(
                "unknown NPU \"{name}\": assuming npu1 (set RuntimeConfig::device to override)"
            );
        }
        Device::Npu1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_map_to_generations() {
        assert_eq!(device_of("NPU Strix"), Device::Npu2);
        assert_eq!(device_of("RyzenAI-npu1"), Device::Npu1);
        assert_eq!(device_of("NPU Phoenix"), Device::Npu1);
    }

    #[test]
    fn instruction_streams_parse_as_binary_or_text() {
        let bin = parse_insts(Path::new("insts.bin"), &[1, 0, 0, 0, 0xff, 0, 0, 0x80]).unwrap();
        assert_eq!(bin, vec![1, 0x8000_00ff]);
        let txt = parse_insts(Path::new("insts.txt"), b"0x00000001\n8000ABCD\n\n").unwrap();
        assert_eq!(txt, vec![1, 0x8000_abcd]);
        let e = parse_insts(Path::new("insts.bin"), &[1, 2, 3]).unwrap_err();
        assert!(e.to_string().contains("3 bytes"), "{e}");
    }
}
