//! Checks of container headers made before symphonia sees the file: values that symphonia's
//! readers do arithmetic on without checking (found by fuzzing, `fuzz/` target `audio_wav`)
//! are rejected here with a clear error. With overflow checks on (debug builds), a WAV `fmt `
//! chunk declaring 65535 channels made symphonia panic computing the block alignment.

use std::path::Path;

use super::AudioError;

/// How much of a file's start is read for these checks.
pub(super) const PREFIX_BYTES: usize = 64 * 1024;

/// symphonia maps at most 26 WAV channels to positions (more is an error there too).
const MAX_WAV_CHANNELS: u16 = 26;

/// Checks the start of a file (`prefix`, up to [`PREFIX_BYTES`]); formats other than WAV pass.
pub(super) fn check(prefix: &[u8], path: &Path) -> Result<(), AudioError> {
    let corrupt = |detail: String| AudioError::Corrupt {
        path: path.to_path_buf(),
        at_seconds: None,
        detail,
    };
    let big_endian = match prefix.get(..4) {
        Some(b"RIFF") | Some(b"RF64") => false,
        Some(b"RIFX") => true,
        _ => return Ok(()),
    };
    if prefix.get(8..12) != Some(b"WAVE") {
        return Ok(());
    }
    let u16_at = |i: usize| {
        let b = [prefix[i], prefix[i + 1]];
        if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let u32_at = |i: usize| {
        let b = [prefix[i], prefix[i + 1], prefix[i + 2], prefix[i + 3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let mut pos = 12usize;
    while pos + 8 <= prefix.len() {
        let id = &prefix[pos..pos + 4];
        let size = u32_at(pos + 4) as usize;
        if id == b"fmt " && pos + 8 + 16 <= prefix.len() {
            let channels = u16_at(pos + 10);
            if channels == 0 || channels > MAX_WAV_CHANNELS {
                return Err(corrupt(format!(
                    "its WAV header declares {channels} channels (1 to {MAX_WAV_CHANNELS} are supported)"
                )));
            }
            return Ok(());
        }
        // Chunks are padded to an even size.
        pos = pos
            .saturating_add(8)
            .saturating_add(size)
            .saturating_add(size & 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav_header(channels: u16) -> Vec<u8> {
        let mut b = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0".to_vec();
        b.extend(channels.to_le_bytes());
        b.extend([0x80, 0x3e, 0, 0, 0, 0x7d, 0, 0, 2, 0, 16, 0]);
        b
    }

    #[test]
    fn channel_counts_outside_1_to_26_are_rejected() {
        let p = Path::new("x.wav");
        assert!(check(&wav_header(1), p).is_ok());
        assert!(check(&wav_header(26), p).is_ok());
        for bad in [0, 27, 0x9202, u16::MAX] {
            let e = check(&wav_header(bad), p).unwrap_err().to_string();
            assert!(
                e.contains(&format!("declares {bad} channels")) && e.contains("x.wav"),
                "{e}"
            );
        }
        // Not WAV, or a header cut short: left to the decoder.
        assert!(check(b"fLaC\0\0\0\x22", p).is_ok());
        assert!(check(&wav_header(0)[..20], p).is_ok());
    }
}
