//! `cargo xtask fetch-model NAME...`: download pinned, checksummed models (and the extra assets)
//! into the cache. Prints each result's path on stdout.

use std::path::PathBuf;

use anyhow::Context;
use whisper_fetch as fetch;

#[derive(clap::Args)]
pub struct Args {
    /// What to fetch: a model (`base`, `tiny.en`), `openai-whisper-sdist` (English normaliser
    /// data and mel filters), `sample` (a short speech clip for the demo) or `silero-vad` (the
    /// voice activity detector of `--vad`).
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
    /// Cache directory [default: $XDNA_WHISPER_CACHE, $XDG_CACHE_HOME/xdna-whisper or
    /// ~/.cache/xdna-whisper].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cache = args.cache_dir.unwrap_or_else(fetch::default_cache_dir);
    for name in &args.names {
        let path = match name.as_str() {
            "openai-whisper-sdist" => fetch::fetch_openai_whisper_sdist(&cache),
            "sample" => fetch::fetch_sample(&cache),
            fetch::vad::VAD_MODEL_NAME => fetch::fetch_vad(&cache),
            model => fetch::fetch_model(model, &cache),
        }
        .with_context(|| format!("fetch-model {name}"))?;
        println!("{}", path.display());
    }
    Ok(())
}
