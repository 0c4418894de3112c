//! The content hash that names a kernel's artifact directory.
//!
//! A kernel's hash is sha256 over, in this order, each field tagged and length-prefixed (so that no
//! two different field lists can produce the same byte stream):
//! 1. `generator`: this crate's version and [`GENERATOR_REVISION`] (the build procedure itself),
//!    and the emulator's [`aie_emu::REVISION`] (every design is emulated and the record kept);
//! 2. `device`: the device name the entry targets (`npu1`, `npu2`);
//! 3. `spec`: `kernel_spec::canonical_form` of the entry (every key of the TOML entry);
//! 4. `source`: for every template/source file the renderer read (`Rendered.inputs`), its path
//!    relative to the templates directory and its bytes, sorted by path;
//! 5. `rendered`: every rendered output file, name and bytes (this also captures renderer code
//!    changes in `kernel-spec` that no template edit shows);
//! 6. `toolchain`: the toolchain identity when aiecc and Peano are found: `aiecc --version` (or the
//!    sha256 of the aiecc file when that fails), `clang++ --version` of Peano, and the exact Peano
//!    and aiecc flags per device (include directories by role, not by install path, so that
//!    runners with different install locations share cache entries); the literal `emit-only` when
//!    no toolchain is found (see `toolchain::Toolchain::identity`). It depends on what is
//!    installed, not on `--emit-only`: on a machine with the toolchain an emit-only run names the
//!    same directory a compile would, so a compiled artifact serves emit-only requests and an
//!    emitted one is compiled in place.
//!
//! Anything not in this list must not influence an artifact; if the build procedure changes in a way
//! the list does not see (new flags, new output files), bump [`GENERATOR_REVISION`].

use sha2::{Digest, Sha256};

/// Bumped by hand whenever kernel-build changes how it turns the same inputs into artifacts.
/// 2: every design is emulated and `emulation.json` written beside it.
pub const GENERATOR_REVISION: u32 = 2;

/// `kernel-build <crate version>`, the generator name written into the manifest.
pub fn generator_name() -> String {
    format!("kernel-build {}", env!("CARGO_PKG_VERSION"))
}

/// The generator identity that enters every hash.
pub fn generator_identity() -> String {
    format!(
        "{} revision {}, aie-emu revision {}",
        generator_name(),
        GENERATOR_REVISION,
        aie_emu::REVISION
    )
}

/// Everything that determines one kernel's artifact (see the module documentation).
pub struct HashInputs<'a> {
    pub generator: &'a str,
    pub device: &'a str,
    pub canonical_spec: &'a str,
    /// (path relative to the templates directory, bytes), in any order: sorted here.
    pub sources: &'a [(String, Vec<u8>)],
    /// (file name, contents) as rendered.
    pub rendered: &'a [(String, String)],
    pub toolchain: &'a str,
}

fn field(h: &mut Sha256, tag: &str, bytes: &[u8]) {
    h.update((tag.len() as u64).to_le_bytes());
    h.update(tag.as_bytes());
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The hex sha256 naming `generated/<name>/<hash>/`.
pub fn kernel_hash(inputs: &HashInputs<'_>) -> String {
    let mut h = Sha256::new();
    field(&mut h, "generator", inputs.generator.as_bytes());
    field(&mut h, "device", inputs.device.as_bytes());
    field(&mut h, "spec", inputs.canonical_spec.as_bytes());
    let mut sources: Vec<&(String, Vec<u8>)> = inputs.sources.iter().collect();
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, bytes) in sources {
        field(&mut h, "source-path", path.as_bytes());
        field(&mut h, "source-bytes", bytes);
    }
    let mut rendered: Vec<&(String, String)> = inputs.rendered.iter().collect();
    rendered.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, text) in rendered {
        field(&mut h, "rendered-name", name.as_bytes());
        field(&mut h, "rendered-bytes", text.as_bytes());
    }
    field(&mut h, "toolchain", inputs.toolchain.as_bytes());
    hex::encode(h.finalize())
}

/// One key for a whole set of kernels (CI cache keys): sha256 over the sorted `name hash` lines.
pub fn combined_key<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut lines: Vec<String> = pairs
        .into_iter()
        .map(|(name, hash)| format!("{name} {hash}\n"))
        .collect();
    lines.sort();
    let mut h = Sha256::new();
    for line in lines {
        h.update(line.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Hex sha256 of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base<'a>(
        sources: &'a [(String, Vec<u8>)],
        rendered: &'a [(String, String)],
    ) -> HashInputs<'a> {
        HashInputs {
            generator: "g",
            device: "npu1",
            canonical_spec: "name = \"a\"",
            sources,
            rendered,
            toolchain: "emit-only",
        }
    }

    #[test]
    fn every_field_changes_the_hash() {
        let sources = vec![("matmul/design.mlir.jinja".to_string(), b"x".to_vec())];
        let rendered = vec![("design.mlir".to_string(), "y".to_string())];
        let h0 = kernel_hash(&base(&sources, &rendered));
        let mut variants = vec![
            kernel_hash(&HashInputs {
                generator: "g2",
                ..base(&sources, &rendered)
            }),
            kernel_hash(&HashInputs {
                device: "npu2",
                ..base(&sources, &rendered)
            }),
            kernel_hash(&HashInputs {
                canonical_spec: "name = \"b\"",
                ..base(&sources, &rendered)
            }),
            kernel_hash(&HashInputs {
                toolchain: "aiecc 1.0",
                ..base(&sources, &rendered)
            }),
        ];
        let s2 = vec![("matmul/design.mlir.jinja".to_string(), b"z".to_vec())];
        variants.push(kernel_hash(&base(&s2, &rendered)));
        let s3 = vec![("matmul/other.jinja".to_string(), b"x".to_vec())];
        variants.push(kernel_hash(&base(&s3, &rendered)));
        let r2 = vec![("design.mlir".to_string(), "w".to_string())];
        variants.push(kernel_hash(&base(&sources, &r2)));
        for v in &variants {
            assert_ne!(&h0, v);
        }
        // Same inputs, same hash; source order does not matter.
        assert_eq!(h0, kernel_hash(&base(&sources, &rendered)));
        let two = vec![
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ];
        let two_rev = vec![two[1].clone(), two[0].clone()];
        assert_eq!(
            kernel_hash(&base(&two, &rendered)),
            kernel_hash(&base(&two_rev, &rendered))
        );
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let a = vec![("ab".to_string(), b"c".to_vec())];
        let b = vec![("a".to_string(), b"bc".to_vec())];
        assert_ne!(kernel_hash(&base(&a, &[])), kernel_hash(&base(&b, &[])));
    }

    #[test]
    fn combined_key_is_order_independent() {
        let k1 = combined_key([("a", "1"), ("b", "2")]);
        let k2 = combined_key([("b", "2"), ("a", "1")]);
        assert_eq!(k1, k2);
        assert_ne!(k1, combined_key([("a", "1"), ("b", "3")]));
    }
}
