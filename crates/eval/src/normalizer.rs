//! Whisper's text normalisers (`whisper.normalizers` of the openai-whisper package), so that
//! word error rates here are computed exactly as Whisper's own evaluations compute them.
//!
//! The British→American spelling list (`english.json`, ~1700 pairs) is not part of this crate:
//! it is read at run time from the openai-whisper source distribution
//! (`whisper/normalizers/english.json` inside it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use unicode_segmentation::UnicodeSegmentation;

use super::numbers::EnglishNumberNormalizer;
use super::pytext::{self, py_split, BoundedLiterals, PY_SPACE};

#[derive(Debug, thiserror::Error)]
pub enum NormalizerError {
    #[error("cannot read the spelling list {path}: {source} (it is whisper/normalizers/english.json of the openai-whisper source distribution; fetch that and pass its path)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a JSON object of string to string (expected whisper/normalizers/english.json of the openai-whisper source distribution): {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Where the spelling list sits inside an extracted openai-whisper source distribution.
pub fn english_json_in_sdist(sdist_root: &Path) -> PathBuf {
    sdist_root
        .join("whisper")
        .join("normalizers")
        .join("english.json")
}

/// Words in brackets (`[music]`, `<unk>`) and in parentheses (`(laughs)`).
struct Annotations {
    brackets: Regex,
    parentheses: Regex,
}

impl Annotations {
    fn new() -> Self {
        Self {
            brackets: Regex::new(r"[<\[][^>\]]*[>\]]").expect("valid built-in pattern"),
            parentheses: Regex::new(r"\(([^)]+?)\)").expect("valid built-in pattern"),
        }
    }

    fn remove(&self, s: &str) -> String {
        let s = self.brackets.replace_all(s, "");
        self.parentheses.replace_all(&s, "").into_owned()
    }
}

/// Whisper's normaliser for languages other than English: lower-case, drop bracketed and
/// parenthesised annotations, replace marks, symbols and punctuation with spaces (optionally
/// dropping diacritics), optionally split into grapheme clusters, collapse whitespace.
pub struct BasicTextNormalizer {
    remove_diacritics: bool,
    split_letters: bool,
    annotations: Annotations,
    spaces: Regex,
}

impl BasicTextNormalizer {
    pub fn new(remove_diacritics: bool, split_letters: bool) -> Self {
        Self {
            remove_diacritics,
            split_letters,
            annotations: Annotations::new(),
            spaces: Regex::new(&format!("{PY_SPACE}+")).expect("valid built-in pattern"),
        }
    }

    pub fn normalize(&self, s: &str) -> String {
        let s = self.annotations.remove(&s.to_lowercase());
        let cleaned = if self.remove_diacritics {
            pytext::remove_symbols_and_diacritics(&s, "")
        } else {
            pytext::remove_symbols(&s)
        };
        let mut s = cleaned.to_lowercase();
        if self.split_letters {
            s = s.graphemes(true).collect::<Vec<_>>().join(" ");
        }
        self.spaces.replace_all(&s, " ").into_owned()
    }
}

impl Default for BasicTextNormalizer {
    fn default() -> Self {
        Self::new(false, false)
    }
}

/// British to American spellings, word by word ("colour" → "color").
pub struct EnglishSpellingNormalizer {
    mapping: HashMap<String, String>,
}

impl EnglishSpellingNormalizer {
    /// Reads the mapping from Whisper's `english.json`.
    pub fn from_json_file(path: &Path) -> Result<Self, NormalizerError> {
        let text = std::fs::read_to_string(path).map_err(|source| NormalizerError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mapping = serde_json::from_str(&text).map_err(|source| NormalizerError::Parse {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self { mapping })
    }

    pub fn from_map(mapping: HashMap<String, String>) -> Self {
        Self { mapping }
    }

    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mapping.is_empty()
    }

    /// Maps every whitespace-separated word; the result is single-space separated.
    pub fn normalize(&self, s: &str) -> String {
        py_split(s)
            .map(|w| self.mapping.get(w).map_or(w, String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Whole-word contractions and abbreviations, spelled out. Each pair is its own substitution
/// pass, in the reference's order (a later pass sees the earlier ones' output).
const CONTRACTIONS: &[(&str, &str)] = &[
    ("won't", "will not"),
    ("can't", "can not"),
    ("let's", "let us"),
    ("ain't", "aint"),
    ("y'all", "you all"),
    ("wanna", "want to"),
    ("gotta", "got to"),
    ("gonna", "going to"),
    ("i'ma", "i am going to"),
    ("imma", "i am going to"),
    ("woulda", "would have"),
    ("coulda", "could have"),
    ("shoulda", "should have"),
    ("ma'am", "madam"),
    // titles and prefixes
    ("mr", "mister "),
    ("mrs", "missus "),
    ("st", "saint "),
    ("dr", "doctor "),
    ("prof", "professor "),
    ("capt", "captain "),
    ("gov", "governor "),
    ("ald", "alderman "),
    ("gen", "general "),
    ("sen", "senator "),
    ("rep", "representative "),
    ("pres", "president "),
    ("rev", "reverend "),
    ("hon", "honorable "),
    ("asst", "assistant "),
    ("assoc", "associate "),
    ("lt", "lieutenant "),
    ("col", "colonel "),
    ("jr", "junior "),
    ("sr", "senior "),
    ("esq", "esquire "),
];

/// Suffix contractions (no word boundary before them): perfect tenses first, then the
/// general ones.
const SUFFIX_CONTRACTIONS: &[(&str, &str)] = &[
    ("'d been", " had been"),
    ("'s been", " has been"),
    ("'d gone", " had gone"),
    ("'s gone", " has gone"),
    ("'d done", " had done"), // "'s done" is ambiguous
    ("'s got", " has got"),
    ("n't", " not"),
    ("'re", " are"),
    ("'s", " is"),
    ("'d", " would"),
    ("'ll", " will"),
    ("'t", " not"),
    ("'ve", " have"),
    ("'m", " am"),
];

/// Hesitations that are not words.
const FILLERS: &[(&str, &str)] = &[
    ("hmm", ""),
    ("mm", ""),
    ("mhm", ""),
    ("mmm", ""),
    ("uh", ""),
    ("um", ""),
];

/// Whisper's English normaliser: lower-case; drop annotations and fillers; expand
/// contractions and titles; strip punctuation and diacritics while keeping number symbols;
/// spelled-out numbers to digits; British spellings to American; collapse whitespace.
pub struct EnglishTextNormalizer {
    annotations: Annotations,
    fillers: BoundedLiterals,
    space_before_apostrophe: Regex,
    /// One pass per pattern, in order: each pass sees the previous one's output.
    replacers: Vec<BoundedLiterals>,
    digit_comma_digit: Regex,
    period: Regex,
    symbol_before_non_digit: Regex,
    percent_after_non_digit: Regex,
    spaces: Regex,
    numbers: EnglishNumberNormalizer,
    spellings: EnglishSpellingNormalizer,
}

impl EnglishTextNormalizer {
    /// `english_json`: `whisper/normalizers/english.json` of the openai-whisper source
    /// distribution (see [`english_json_in_sdist`]).
    pub fn new(english_json: &Path) -> Result<Self, NormalizerError> {
        Ok(Self::with_spellings(
            EnglishSpellingNormalizer::from_json_file(english_json)?,
        ))
    }

    /// From the root of an extracted openai-whisper source distribution.
    pub fn from_sdist(sdist_root: &Path) -> Result<Self, NormalizerError> {
        Self::new(&english_json_in_sdist(sdist_root))
    }

    pub fn with_spellings(spellings: EnglishSpellingNormalizer) -> Self {
        let re = |pattern: &str| Regex::new(pattern).expect("valid built-in pattern");
        let mut replacers: Vec<BoundedLiterals> = CONTRACTIONS
            .iter()
            .map(|pair| BoundedLiterals::new(std::slice::from_ref(pair), true, true))
            .collect();
        replacers.extend(
            SUFFIX_CONTRACTIONS
                .iter()
                .map(|pair| BoundedLiterals::new(std::slice::from_ref(pair), false, true)),
        );
        Self {
            annotations: Annotations::new(),
            fillers: BoundedLiterals::new(FILLERS, true, true),
            space_before_apostrophe: re(&format!("{PY_SPACE}+'")),
            replacers,
            digit_comma_digit: re(r"(\d),(\d)"),
            period: re(r"\.([^0-9]|$)"),
            symbol_before_non_digit: re(r"[.$¢€£]([^0-9])"),
            percent_after_non_digit: re(r"([^0-9])%"),
            spaces: re(&format!("{PY_SPACE}+")),
            numbers: EnglishNumberNormalizer::new(),
            spellings,
        }
    }

    pub fn normalize(&self, s: &str) -> String {
        let s = self.annotations.remove(&s.to_lowercase());
        let s = self.fillers.replace_all(&s);
        let mut s = self
            .space_before_apostrophe
            .replace_all(&s, "'")
            .into_owned();
        for replacer in &self.replacers {
            s = replacer.replace_all(&s);
        }
        let s = self.digit_comma_digit.replace_all(&s, "${1}${2}");
        // Periods go, except as decimal points.
        let s = self.period.replace_all(&s, " ${1}");
        let s = pytext::remove_symbols_and_diacritics(&s, ".%$¢€£");

        let s = self.numbers.normalize(&s);
        let s = self.spellings.normalize(&s);

        // Number symbols that ended up without a number next to them go too.
        let s = self.symbol_before_non_digit.replace_all(&s, " ${1}");
        let s = self.percent_after_non_digit.replace_all(&s, "${1} ");
        self.spaces.replace_all(&s, " ").into_owned()
    }

    /// The normalised text split into words (what WER is computed on).
    pub fn words(&self, s: &str) -> Vec<String> {
        py_split(&self.normalize(s)).map(str::to_owned).collect()
    }
}
