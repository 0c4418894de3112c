//! Golden tests: the rendered MLIR-AIE design and kernel C++ of one entry per family (plus an
//! int8 and an npu2 kernel), rendered from the project's real kernel-specs/ and templates/.
//!
//! A deliberate template or spec change shows up here as a diff. Review it, then re-bless with
//! `INSTA_UPDATE=always cargo test -p kernel-spec --release --test golden` (or `cargo insta review`).

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn pin(name: &str) {
    let specs = kernel_spec::load_dir(&root().join("kernel-specs")).expect("kernel-specs/ loads");
    let spec = specs
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("kernel-specs/ has no entry {name}"));
    let r = kernel_spec::render(spec, &root().join("templates")).unwrap_or_else(|e| panic!("{e}"));
    for (file, text) in &r.files {
        insta::assert_snapshot!(format!("{name}__{file}"), text);
    }
}

#[test]
fn matmul_bias_residual_npu1() {
    pin("base_dec_out_npu1");
}

#[test]
fn matmul_int8_npu1() {
    pin("base_dec_fc1_int8_npu1");
}

#[test]
fn matmul_gelu_npu2() {
    pin("base_dec_fc1_npu2");
}

#[test]
fn ffn_npu1() {
    pin("base_dec_ffn_npu1");
}

#[test]
fn attention_causal_npu1() {
    pin("base_dec_self_attn_npu1");
}

#[test]
fn layernorm_npu1() {
    pin("base_dec_ln_npu1");
}

#[test]
fn lm_head_sparse_npu1() {
    pin("base_lm_head_top2048_npu1");
}
