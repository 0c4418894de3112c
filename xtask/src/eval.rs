//! `cargo xtask eval MANIFEST.tsv`: transcribe every clip of a manifest and report per-clip and
//! total word error rate (Whisper's English normaliser) and the real-time factor.

use std::path::PathBuf;

use anyhow::Context;
use whisper_eval::{evaluate, read_manifest, Clip, EnglishTextNormalizer};
use xdna_whisper::ModelArgs;

#[derive(clap::Args)]
pub struct Args {
    /// A TSV manifest (file, duration_s, reference, ...), such as ../shared/data/speech/manifest.tsv.
    pub manifest: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Only clips of this language (from extra.tsv beside the manifest); `all` for every clip.
    #[arg(long, default_value = "en")]
    pub lang: String,
    /// Write per-clip results as JSON to FILE.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cache = args.model.cache();
    let clips: Vec<Clip> = read_manifest(&args.manifest)?
        .into_iter()
        .filter(|c| args.lang == "all" || c.language.as_deref().is_none_or(|l| l == args.lang))
        .collect();
    let sdist = whisper_fetch::fetch_openai_whisper_sdist(&cache)?;
    let normalizer = EnglishTextNormalizer::from_sdist(&sdist)?;
    let (whisper, mut options) = args.model.load(false)?;
    if args.lang != "all" && whisper.is_multilingual() && options.language.is_none() {
        options.language = Some(args.lang.clone());
    }
    let report = evaluate(&whisper, &options, &clips, &normalizer, |r| {
        eprintln!(
            "{:6.1}% {:>3}/{:<3} {:6.2}s  {}\n         ref: {}\n         hyp: {}",
            100.0 * r.errors as f64 / r.reference_words.max(1) as f64,
            r.errors,
            r.reference_words,
            r.wall_seconds,
            r.file,
            r.reference,
            r.hypothesis
        )
    })?;
    println!(
        "{} clips, {:.1} s of audio: WER {:.2}% ({} errors / {} words), {:.2}x real time",
        report.clips.len(),
        report.audio_seconds,
        100.0 * report.wer,
        report.errors,
        report.reference_words,
        report.realtime_factor
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
