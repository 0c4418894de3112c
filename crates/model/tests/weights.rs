//! Checkpoint loading: real CTranslate2 and Hugging Face tiny.en (bit-identical by construction),
//! base, and synthetic CTranslate2 files exercising every dtype, split and error path.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use whisper_fetch::{default_cache_dir, model_dir};
use whisper_model::weights::{Checkpoint, Format, WeightsError};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hf_tiny_en() -> Option<PathBuf> {
    let dir = workspace_root().join("../shared/models/whisper-tiny.en-hf");
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        support::skip(format!(
            "{} is missing (the shared Hugging Face tiny.en checkpoint)",
            dir.display()
        ));
        None
    }
}

/// A fetched model from the cache (CI runs `cargo xtask fetch-model` first); fetched here if
/// missing, skipped loudly if that is impossible.
fn cached(name: &'static str) -> Option<PathBuf> {
    static TINY: OnceLock<Option<PathBuf>> = OnceLock::new();
    static BASE: OnceLock<Option<PathBuf>> = OnceLock::new();
    let cell = if name == "base" { &BASE } else { &TINY };
    cell.get_or_init(|| match model_dir(name, &default_cache_dir(), true) {
        Ok(dir) => Some(dir),
        Err(e) => {
            support::skip(format!(
                "model {name} is not available and could not be fetched: {e}"
            ));
            None
        }
    })
    .clone()
}

#[test]
fn hf_and_ct2_tiny_en_are_bit_identical() {
    let (Some(hf_dir), Some(ct2_dir)) = (hf_tiny_en(), cached("tiny.en")) else {
        return;
    };
    let hf = Checkpoint::load(&hf_dir).unwrap();
    let ct2 = Checkpoint::load(&ct2_dir).unwrap();
    assert_eq!(hf.format, Format::HuggingFace);
    assert_eq!(ct2.format, Format::CTranslate2);
    assert_eq!(hf.names(), ct2.names(), "same tensor names in both formats");
    assert_eq!(hf.names().len(), 167);
    for name in hf.names() {
        let a = hf.get(&name).unwrap();
        let b = ct2.get(&name).unwrap();
        assert_eq!(a.shape, b.shape, "{name}");
        assert_eq!(a.data.len(), a.numel(), "{name}");
        let same = a
            .data
            .iter()
            .zip(&b.data)
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{name} differs between the HF and CT2 checkpoints");
    }
    assert_eq!(hf.dims, ct2.dims);
    let (g1, g2) = (&hf.generation, &ct2.generation);
    assert_eq!(g1.suppress_tokens, g2.suppress_tokens);
    assert_eq!(g1.begin_suppress_tokens, g2.begin_suppress_tokens);
    assert_eq!(g1.alignment_heads, g2.alignment_heads);
    assert_eq!(g1.is_multilingual, g2.is_multilingual);
}

#[test]
fn tiny_en_dims_and_generation_config() {
    for dir in [hf_tiny_en(), cached("tiny.en")].into_iter().flatten() {
        let ck = Checkpoint::load(&dir).unwrap();
        let d = ck.dims;
        assert_eq!(
            (d.n_mels, d.n_vocab, d.n_audio_ctx, d.n_audio_state),
            (80, 51864, 1500, 384)
        );
        assert_eq!((d.n_audio_head, d.n_audio_layer), (6, 4));
        assert_eq!((d.n_text_ctx, d.n_text_state, d.n_text_head), (448, 384, 6));
        assert_eq!(d.n_text_layer, 4);
        let g = &ck.generation;
        assert!(!g.is_multilingual);
        assert!(g.lang_to_id.is_empty());
        assert_eq!(g.begin_suppress_tokens, vec![220, 50256]);
        assert_eq!(g.suppress_tokens.len(), 90);
        assert_eq!(&g.suppress_tokens[..4], &[1, 2, 7, 8]);
        assert_eq!(g.alignment_heads.len(), 8);
        assert_eq!(g.alignment_heads[0], (1, 0));
        assert_eq!(
            ck.shape("model.encoder.conv1.weight"),
            Some(&[384, 80, 3][..])
        );
        assert_eq!(
            ck.shape("model.decoder.layers.3.encoder_attn.k_proj.weight"),
            Some(&[384, 384][..])
        );
        // Whisper's K projections have no bias.
        assert!(!ck.contains("model.encoder.layers.0.self_attn.k_proj.bias"));
        if ck.format == Format::HuggingFace {
            assert_eq!(g.eot, Some(50256));
            assert_eq!(g.sot, Some(50257));
            assert_eq!(g.no_timestamps, Some(50362));
        }
    }
}

#[test]
fn base_dims_and_generation_config() {
    let Some(dir) = cached("base") else { return };
    let ck = Checkpoint::load(&dir).unwrap();
    let d = ck.dims;
    assert_eq!((d.n_mels, d.n_vocab, d.n_audio_state), (80, 51865, 512));
    assert_eq!((d.n_audio_head, d.n_audio_layer), (8, 6));
    assert_eq!((d.n_text_head, d.n_text_layer, d.n_text_ctx), (8, 6, 448));
    assert_eq!(ck.names().len(), 6 * 15 + 6 * 24 + 11);
    let g = &ck.generation;
    assert!(g.is_multilingual);
    assert_eq!(g.lang_to_id.len(), 99);
    assert_eq!(g.lang_to_id[0], ("en".to_string(), 50259));
    assert!(g.lang_to_id.contains(&("he".to_string(), 50279)));
    assert_eq!(g.lang_to_id[98], ("su".to_string(), 50357));
    assert_eq!(g.begin_suppress_tokens, vec![220, 50257]);
    assert_eq!(g.alignment_heads.len(), 8);
    assert_eq!(g.alignment_heads[0], (3, 1));
    let q = ck
        .get("model.decoder.layers.5.encoder_attn.v_proj.weight")
        .unwrap();
    assert_eq!(q.shape, vec![512, 512]);
    assert!(q.data.iter().all(|v| v.is_finite()) && q.data.iter().any(|&v| v != 0.0));
}

#[test]
fn truncated_model_bin_is_a_size_error() {
    let Some(src) = cached("tiny.en") else { return };
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "vocabulary.txt", "tokenizer.json"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let full = std::fs::read(src.join("model.bin")).unwrap();
    for cut in [3, 40, full.len() / 2, full.len() - 1] {
        std::fs::write(tmp.path().join("model.bin"), &full[..cut]).unwrap();
        let err = Checkpoint::load(tmp.path()).unwrap_err();
        assert!(
            matches!(err, WeightsError::Truncated { .. }),
            "cut at {cut}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("truncated") && msg.contains(&format!("file has {cut} bytes")));
        assert!(msg.contains("cargo xtask fetch-model"), "{msg}");
    }
}

#[test]
fn take_consumes_a_tensor() {
    let Some(dir) = hf_tiny_en() else { return };
    let mut ck = Checkpoint::load(&dir).unwrap();
    let name = "model.encoder.layer_norm.weight";
    let t = ck.take(name).unwrap();
    assert_eq!(t.shape, vec![384]);
    assert!(!ck.contains(name));
    assert!(matches!(
        ck.take(name),
        Err(WeightsError::AlreadyTaken { .. })
    ));
    assert!(matches!(
        ck.get("model.no.such.tensor"),
        Err(WeightsError::MissingTensor { .. })
    ));
    assert_eq!(ck.names().len(), 166);
}

#[test]
fn missing_directory_and_files_say_how_to_fetch() {
    let err = Checkpoint::load(Path::new("/nonexistent/whisper-model")).unwrap_err();
    assert!(err.to_string().contains("cargo xtask fetch-model"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let err = Checkpoint::load(tmp.path()).unwrap_err();
    assert!(matches!(err, WeightsError::NoModelFile { .. }), "{err}");
    assert!(err.to_string().contains("cargo xtask fetch-model"), "{err}");
}

// ---- synthetic CTranslate2 files ----

const F32: u8 = 0;
const I8: u8 = 1;
const F16: u8 = 4;
const BF16: u8 = 5;

/// Writes the CTranslate2 model.bin layout (binary version 6).
#[derive(Default)]
struct Ct2Writer {
    vars: Vec<(String, Vec<usize>, u8, Vec<u8>)>,
    aliases: Vec<(String, String)>,
    spec: String,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend(((s.len() + 1) as u16).to_le_bytes());
    out.extend(s.as_bytes());
    out.push(0);
}

impl Ct2Writer {
    fn f32(&mut self, name: &str, shape: &[usize], data: &[f32]) {
        assert_eq!(data.len(), shape.iter().product::<usize>());
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.raw(name, shape, F32, bytes);
    }

    fn raw(&mut self, name: &str, shape: &[usize], dtype: u8, bytes: Vec<u8>) {
        self.vars.retain(|v| v.0 != name);
        self.vars
            .push((name.to_string(), shape.to_vec(), dtype, bytes));
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(6u32.to_le_bytes());
        put_str(&mut out, &self.spec);
        out.extend(3u32.to_le_bytes());
        out.extend((self.vars.len() as u32).to_le_bytes());
        for (name, shape, dtype, data) in &self.vars {
            put_str(&mut out, name);
            out.push(shape.len() as u8);
            for &d in shape {
                out.extend((d as u32).to_le_bytes());
            }
            out.push(*dtype);
            out.extend((data.len() as u32).to_le_bytes());
            out.extend(data);
        }
        out.extend((self.aliases.len() as u32).to_le_bytes());
        for (a, t) in &self.aliases {
            put_str(&mut out, a);
            put_str(&mut out, t);
        }
        out
    }
}

/// Deterministic distinct values: element `i` of the variable with seed `s`.
fn seq(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 + seed * 13) % 101) as f32 / 16.0 - 3.0)
        .collect()
}

const D: usize = 4;
const VOCAB: usize = 6;

/// A complete tiny Whisper (1 encoder and 1 decoder layer, width 4, 2 heads, 2 mel bins).
fn tiny_model() -> Ct2Writer {
    let mut w = Ct2Writer {
        spec: "WhisperSpec".into(),
        ..Default::default()
    };
    let mut seed = 0;
    let mut var = |w: &mut Ct2Writer, name: &str, shape: &[usize]| {
        seed += 1;
        w.f32(name, shape, &seq(shape.iter().product(), seed));
    };
    var(&mut w, "encoder/conv1/weight", &[D, 2, 3]);
    var(&mut w, "encoder/conv1/bias", &[D]);
    var(&mut w, "encoder/conv2/weight", &[D, D, 3]);
    var(&mut w, "encoder/conv2/bias", &[D]);
    var(&mut w, "encoder/position_encodings/encodings", &[3, D]);
    var(&mut w, "decoder/embeddings/weight", &[VOCAB, D]);
    var(&mut w, "decoder/position_encodings/encodings", &[5, D]);
    for side in ["encoder", "decoder"] {
        let l = format!("{side}/layer_0");
        for ln in ["self_attention/layer_norm", "ffn/layer_norm"] {
            var(&mut w, &format!("{l}/{ln}/gamma"), &[D]);
            var(&mut w, &format!("{l}/{ln}/beta"), &[D]);
        }
        var(
            &mut w,
            &format!("{l}/self_attention/linear_0/weight"),
            &[3 * D, D],
        );
        // K bias is zero, as in every converted Whisper.
        let mut b = seq(3 * D, 99);
        b[D..2 * D].fill(0.0);
        w.f32(&format!("{l}/self_attention/linear_0/bias"), &[3 * D], &b);
        var(
            &mut w,
            &format!("{l}/self_attention/linear_1/weight"),
            &[D, D],
        );
        var(&mut w, &format!("{l}/self_attention/linear_1/bias"), &[D]);
        var(&mut w, &format!("{l}/ffn/linear_0/weight"), &[2 * D, D]);
        var(&mut w, &format!("{l}/ffn/linear_0/bias"), &[2 * D]);
        var(&mut w, &format!("{l}/ffn/linear_1/weight"), &[D, 2 * D]);
        var(&mut w, &format!("{l}/ffn/linear_1/bias"), &[D]);
        var(&mut w, &format!("{side}/layer_norm/gamma"), &[D]);
        var(&mut w, &format!("{side}/layer_norm/beta"), &[D]);
        w.raw(
            &format!("{side}/num_heads"),
            &[],
            2,
            2i16.to_le_bytes().to_vec(),
        );
    }
    let l = "decoder/layer_0/attention";
    var(&mut w, &format!("{l}/layer_norm/gamma"), &[D]);
    var(&mut w, &format!("{l}/layer_norm/beta"), &[D]);
    var(&mut w, &format!("{l}/linear_0/weight"), &[D, D]);
    var(&mut w, &format!("{l}/linear_0/bias"), &[D]);
    var(&mut w, &format!("{l}/linear_1/weight"), &[2 * D, D]);
    let mut b = seq(2 * D, 98);
    b[..D].fill(0.0);
    w.f32(&format!("{l}/linear_1/bias"), &[2 * D], &b);
    var(&mut w, &format!("{l}/linear_2/weight"), &[D, D]);
    var(&mut w, &format!("{l}/linear_2/bias"), &[D]);
    w.aliases.push((
        "decoder/projection/weight".into(),
        "decoder/embeddings/weight".into(),
    ));
    w
}

fn write_model(w: &Ct2Writer) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("model.bin"), w.bytes()).unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        r#"{"suppress_ids": [1, 2], "suppress_ids_begin": [3], "lang_ids": [4],
            "alignment_heads": [[0, 1]]}"#,
    )
    .unwrap();
    let vocab: String = (0..VOCAB).map(|i| format!("t{i}\n")).collect();
    std::fs::write(tmp.path().join("vocabulary.txt"), vocab).unwrap();
    tmp
}

fn var_data(w: &Ct2Writer, name: &str) -> Vec<f32> {
    let v = w.vars.iter().find(|v| v.0 == name).unwrap();
    assert_eq!(v.2, F32);
    v.3.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn synthetic_ct2_maps_and_splits_fused_tensors() {
    let w = tiny_model();
    let tmp = write_model(&w);
    let ck = Checkpoint::load(tmp.path()).unwrap();
    let d = ck.dims;
    assert_eq!(
        (d.n_mels, d.n_vocab, d.n_audio_ctx, d.n_text_ctx),
        (2, VOCAB, 3, 5)
    );
    assert_eq!(
        (d.n_audio_state, d.n_audio_head, d.n_audio_layer),
        (D, 2, 1)
    );
    assert_eq!((d.n_text_state, d.n_text_head, d.n_text_layer), (D, 2, 1));
    assert_eq!(ck.names().len(), 15 + 24 + 11);
    assert!(
        !ck.contains("proj_out.weight"),
        "tied projection is not repeated"
    );
    let g = &ck.generation;
    assert_eq!(
        (g.suppress_tokens.clone(), g.begin_suppress_tokens.clone()),
        (vec![1, 2], vec![3])
    );
    assert_eq!(g.alignment_heads, vec![(0, 1)]);

    let qkv = var_data(&w, "encoder/layer_0/self_attention/linear_0/weight");
    for (i, p) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
        let t = ck
            .get(&format!("model.encoder.layers.0.self_attn.{p}.weight"))
            .unwrap();
        assert_eq!(t.shape, vec![D, D]);
        assert_eq!(t.data, qkv[i * D * D..(i + 1) * D * D]);
    }
    let qkv_b = var_data(&w, "decoder/layer_0/self_attention/linear_0/bias");
    let vb = ck
        .get("model.decoder.layers.0.self_attn.v_proj.bias")
        .unwrap();
    assert_eq!(vb.data, qkv_b[2 * D..]);
    let kv = var_data(&w, "decoder/layer_0/attention/linear_1/weight");
    let v = ck
        .get("model.decoder.layers.0.encoder_attn.v_proj.weight")
        .unwrap();
    assert_eq!(v.data, kv[D * D..]);
    let ln = ck
        .get("model.decoder.layers.0.encoder_attn_layer_norm.bias")
        .unwrap();
    assert_eq!(
        ln.data,
        var_data(&w, "decoder/layer_0/attention/layer_norm/beta")
    );
    let fc2 = ck.get("model.encoder.layers.0.fc2.weight").unwrap();
    assert_eq!(fc2.shape, vec![D, 2 * D]);
    assert!(!ck.contains("model.decoder.layers.0.encoder_attn.k_proj.bias"));
}

#[test]
fn synthetic_ct2_nonzero_k_bias_is_exposed() {
    let mut w = tiny_model();
    w.f32(
        "encoder/layer_0/self_attention/linear_0/bias",
        &[3 * D],
        &seq(3 * D, 5),
    );
    let tmp = write_model(&w);
    let ck = Checkpoint::load(tmp.path()).unwrap();
    let k = ck
        .get("model.encoder.layers.0.self_attn.k_proj.bias")
        .unwrap();
    assert_eq!(k.data, seq(3 * D, 5)[D..2 * D]);
}

#[test]
fn synthetic_ct2_half_and_int8_are_converted() {
    let mut w = tiny_model();
    let vals = [1.5f32, -2.25, 0.125, 3.0];
    let f16: Vec<u8> = vals
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    w.raw("encoder/layer_norm/gamma", &[D], F16, f16);
    let bf16: Vec<u8> = vals
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    w.raw("decoder/layer_norm/beta", &[D], BF16, bf16);
    // int8 fused QKV [12, 4] with one scale per row: x = q / scale.
    let q: Vec<i8> = (0..3 * D * D)
        .map(|i| ((i as i32 * 5) % 250 - 120) as i8)
        .collect();
    let scales: Vec<f32> = (0..3 * D).map(|r| 2.0 + r as f32).collect();
    let name = "decoder/layer_0/self_attention/linear_0/weight";
    w.raw(name, &[3 * D, D], I8, q.iter().map(|&v| v as u8).collect());
    w.f32(&format!("{name}_scale"), &[3 * D], &scales);
    let tmp = write_model(&w);
    let ck = Checkpoint::load(tmp.path()).unwrap();
    assert_eq!(
        ck.get("model.encoder.layer_norm.weight").unwrap().data,
        vals
    );
    assert_eq!(ck.get("model.decoder.layer_norm.bias").unwrap().data, vals);
    let v = ck
        .get("model.decoder.layers.0.self_attn.v_proj.weight")
        .unwrap();
    let want: Vec<f32> = (2 * D * D..3 * D * D)
        .map(|i| q[i] as f32 * (1.0 / scales[i / D]))
        .collect();
    assert_eq!(v.data, want);

    // int8 without its scale is reported.
    w.vars.retain(|v| v.0 != format!("{name}_scale"));
    let tmp = write_model(&w);
    let err = Checkpoint::load(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("_scale"), "{err}");
}

#[test]
fn synthetic_ct2_errors() {
    // Unknown dtype id.
    let mut w = tiny_model();
    w.raw("encoder/layer_norm/beta", &[D], 9, vec![0; 16]);
    let err = Checkpoint::load(write_model(&w).path()).unwrap_err();
    assert!(matches!(err, WeightsError::UnknownDtype { .. }), "{err}");
    assert!(err.to_string().contains("encoder/layer_norm/beta"), "{err}");

    // Payload size disagreeing with the shape.
    let mut w = tiny_model();
    w.raw("encoder/layer_norm/beta", &[D], F32, vec![0; 12]);
    let err = Checkpoint::load(write_model(&w).path()).unwrap_err();
    assert!(matches!(err, WeightsError::Corrupt { .. }), "{err}");

    // Not a Whisper spec.
    let mut w = tiny_model();
    w.spec = "TransformerSpec".into();
    let err = Checkpoint::load(write_model(&w).path()).unwrap_err();
    assert!(err.to_string().contains("not a Whisper model"), "{err}");

    // Trailing garbage.
    let w = tiny_model();
    let tmp = write_model(&w);
    let mut bytes = w.bytes();
    bytes.extend([1, 2, 3]);
    std::fs::write(tmp.path().join("model.bin"), bytes).unwrap();
    let err = Checkpoint::load(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("3 unexpected bytes"), "{err}");

    // Every truncation point is caught.
    let full = w.bytes();
    for cut in (0..full.len()).step_by(97) {
        std::fs::write(tmp.path().join("model.bin"), &full[..cut]).unwrap();
        let err = Checkpoint::load(tmp.path()).unwrap_err();
        assert!(
            matches!(err, WeightsError::Truncated { .. }),
            "cut {cut}: {err}"
        );
    }

    // A missing layer tensor names the CTranslate2 variable.
    let mut w = tiny_model();
    w.vars
        .retain(|v| v.0 != "decoder/layer_0/attention/linear_2/bias");
    let err = Checkpoint::load(write_model(&w).path()).unwrap_err();
    assert!(
        err.to_string()
            .contains("decoder/layer_0/attention/linear_2/bias"),
        "{err}"
    );

    // config.json is required.
    let tmp = write_model(&tiny_model());
    std::fs::remove_file(tmp.path().join("config.json")).unwrap();
    let err = Checkpoint::load(tmp.path()).unwrap_err();
    assert!(matches!(err, WeightsError::MissingFile { .. }), "{err}");
}
