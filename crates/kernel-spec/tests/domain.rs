//! Every number an entry declares has its domain checked: zero and absurdly large dimensions
//! (and zero paddings) fail the checks with a message naming the file, the entry and the key.
//! Each family's first real entry is taken from `kernel-specs/` and one key at a time is broken.

use std::path::{Path, PathBuf};

use kernel_spec::{check, parse_file, CheckKind, MAX_VALUE};

fn first_entry(family: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../kernel-specs")
        .join(format!("{family}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let entry = text.split("\n[[kernel]]").nth(1).unwrap();
    (
        PathBuf::from(format!("kernel-specs/{family}.toml")),
        format!("[[kernel]]{entry}"),
    )
}

/// The entry with `key = value` in place of the key's line.
fn with(entry: &str, key: &str, value: &str) -> String {
    let mut found = false;
    let out: Vec<String> = entry
        .lines()
        .map(|l| {
            if l.split('=').next().map(str::trim) == Some(key) {
                found = true;
                format!("{key} = {value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(found, "no {key} in {entry}");
    out.join("\n")
}

fn expect_shape_error(file: &Path, text: &str, needle: &str) {
    let specs = parse_file(file, text).unwrap_or_else(|e| panic!("{e}"));
    let e = check(&specs[0]).expect_err(needle);
    assert_eq!(e.kind, CheckKind::Shape, "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("{}: entry \"", file.display())) && msg.contains(needle),
        "{msg} should name the entry and {needle:?}"
    );
}

#[test]
fn the_real_entries_pass() {
    for family in ["matmul", "attention", "ffn", "layernorm", "lm_head"] {
        let (file, text) = first_entry(family);
        let specs = parse_file(&file, &text).unwrap();
        check(&specs[0]).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn zero_and_huge_dimensions_are_rejected_with_their_key() {
    for (family, keys) in [
        ("matmul", &["m", "k", "n"][..]),
        ("attention", &["heads", "head_dim", "q_len", "kv_len"]),
        ("ffn", &["rows", "d_model", "d_ff"]),
        ("layernorm", &["rows", "dim"]),
        ("lm_head", &["rows", "d_model", "vocab"]),
    ] {
        let (file, entry) = first_entry(family);
        for key in keys {
            expect_shape_error(&file, &with(&entry, key, "0"), &format!("{key} = 0"));
            let huge = (MAX_VALUE as u64 * 4096).to_string();
            expect_shape_error(&file, &with(&entry, key, &huge), &format!("{key} = {huge}"));
        }
    }
}

#[test]
fn matmul_with_m_zero_is_not_built() {
    // The case of the issue: padding made `m = 0` look like a 3072-row matmul.
    let (file, entry) = first_entry("matmul");
    assert!(entry.contains("pad_m_to"), "the first matmul entry pads m");
    expect_shape_error(
        &file,
        &with(&entry, "m", "0"),
        "m = 0: every dimension must be at least 1",
    );
}

#[test]
fn top_k_zero_huge_tiles_and_zero_paddings_are_rejected() {
    let (file, entry) = first_entry("lm_head");
    expect_shape_error(
        &file,
        &entry.replace("vocab = 51865", "vocab = 51865\ntop_k = 0"),
        "top_k = 0",
    );
    let (file, entry) = first_entry("matmul");
    expect_shape_error(
        &file,
        &entry.replace("pad_m_to = 3072", "pad_m_to = 0"),
        "tiling.pad_m_to = 0",
    );
    let huge = format!("tile_m = {}", MAX_VALUE * 2);
    expect_shape_error(
        &file,
        &entry.replace("tile_m = 32", &huge),
        "tiling.tile_m = 33554432 is larger than",
    );
}
