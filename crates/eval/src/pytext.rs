//! Python `str`/`re` text semantics that Whisper's normalisers rely on and that Rust's `char`
//! and `regex` define differently: what counts as whitespace and as a word character (and so
//! where `\b` holds), `str.split()`, and the symbol/diacritic stripping by Unicode category.
//! Rust's `regex` has no look-around and a different `\b`, so word-bounded patterns are
//! matched here by hand with Python's definitions.

use regex::Regex;
use unicode_general_category::get_general_category;
use unicode_normalization::UnicodeNormalization;

/// Python's `\s` inside a Rust regex. Python's whitespace (`str.isspace`, `re` `\s`) is Unicode
/// White_Space plus the four information separators U+001C..U+001F.
pub(crate) const PY_SPACE: &str = r"[\s\x1C-\x1F]";

/// `str.isspace()`.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1C}'..='\u{1F}').contains(&c)
}

/// Two-letter Unicode general category (`unicodedata.category`).
pub(crate) fn category(c: char) -> &'static str {
    get_general_category(c).abbreviation()
}

/// A word character for Python's `re` (`\w`, and so `\b`): `str.isalnum()` or `_`. For
/// `str` that is exactly the letter (L*) and number (N*) categories; Rust's `\w` also takes
/// combining marks and connector punctuation, which changes where `\b` holds.
pub(crate) fn is_py_word(c: char) -> bool {
    c == '_' || matches!(category(c).as_bytes()[0], b'L' | b'N')
}

/// Python's `\b` at byte offset `i` of `s` (which must be a char boundary).
pub(crate) fn py_boundary(s: &str, i: usize) -> bool {
    let before = s[..i].chars().next_back().is_some_and(is_py_word);
    let after = s[i..].chars().next().is_some_and(is_py_word);
    before != after
}

/// `str.split()` without arguments.
pub(crate) fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|w| !w.is_empty())
}

/// Python's decimal value of a Unicode decimal digit (category Nd), as `int()` reads it.
/// Unicode encodes every Nd digit in a contiguous run `0..=9`, so the value is the offset
/// from the start of the run of consecutive Nd code points, modulo 10.
pub(crate) fn decimal_value(c: char) -> Option<u32> {
    if c.is_ascii_digit() {
        return Some(c as u32 - '0' as u32);
    }
    if category(c) != "Nd" {
        return None;
    }
    let mut start = c as u32;
    while let Some(prev) = start.checked_sub(1).and_then(char::from_u32) {
        if category(prev) != "Nd" {
            break;
        }
        start -= 1;
    }
    Some((c as u32 - start) % 10)
}

/// Letters that NFKD does not split into base letter plus mark, spelled the way Whisper
/// spells them when it drops diacritics.
fn extra_diacritic(c: char) -> Option<&'static str> {
    Some(match c {
        'œ' => "oe",
        'Œ' => "OE",
        'ø' => "o",
        'Ø' => "O",
        'æ' => "ae",
        'Æ' => "AE",
        'ß' => "ss",
        'ẞ' => "SS",
        'đ' | 'ð' => "d",
        'Đ' | 'Ð' => "D",
        'þ' | 'Þ' => "th",
        'ł' => "l",
        'Ł' => "L",
        _ => return None,
    })
}

/// NFKD, then: characters in `keep` stay; the letters above are spelled out; non-spacing marks
/// (the separated diacritics) vanish; every other mark, symbol and punctuation becomes a space.
pub(crate) fn remove_symbols_and_diacritics(s: &str, keep: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.nfkd() {
        if keep.contains(c) {
            out.push(c);
        } else if let Some(spelled) = extra_diacritic(c) {
            out.push_str(spelled);
        } else {
            match category(c) {
                "Mn" => {}
                cat if matches!(cat.as_bytes()[0], b'M' | b'S' | b'P') => out.push(' '),
                _ => out.push(c),
            }
        }
    }
    out
}

/// NFKC, then every mark, symbol and punctuation becomes a space (diacritics stay).
pub(crate) fn remove_symbols(s: &str) -> String {
    s.nfkc()
        .map(|c| {
            if matches!(category(c).as_bytes()[0], b'M' | b'S' | b'P') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// A set of literal alternatives, each optionally wrapped in Python `\b` assertions, replaced
/// the way `re.sub` would: scanning left to right, at each position trying the alternatives
/// in order and taking the first whose boundaries hold, never overlapping.
pub(crate) struct BoundedLiterals {
    alternatives: Vec<(&'static str, &'static str)>,
    left: bool,
    right: bool,
}

impl BoundedLiterals {
    /// `alternatives` are `(pattern, replacement)` pairs; `left`/`right` ask for `\b` before and
    /// after the pattern.
    pub(crate) fn new(
        alternatives: &[(&'static str, &'static str)],
        left: bool,
        right: bool,
    ) -> Self {
        Self {
            alternatives: alternatives.to_vec(),
            left,
            right,
        }
    }

    pub(crate) fn replace_all(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        'scan: while i < s.len() {
            if !self.left || py_boundary(s, i) {
                for &(pattern, replacement) in &self.alternatives {
                    let end = i + pattern.len();
                    if s[i..].starts_with(pattern) && (!self.right || py_boundary(s, end)) {
                        out.push_str(replacement);
                        i = end;
                        continue 'scan;
                    }
                }
            }
            let c = s[i..]
                .chars()
                .next()
                .expect("i is a char boundary inside s");
            out.push(c);
            i += c.len_utf8();
        }
        out
    }
}

/// Matches of `re` that are also followed by a Python word boundary, leftmost first and
/// non-overlapping, as `re` finds `PATTERN\b`. Only valid for patterns where, at a given start,
/// a shorter alternative could never satisfy the boundary when the preferred one fails (true of
/// every pattern this module uses it for: what the preferred match leaves behind is a word
/// character).
pub(crate) fn captures_before_boundary<'h>(re: &Regex, s: &'h str) -> Vec<regex::Captures<'h>> {
    let mut found = Vec::new();
    let mut pos = 0;
    while pos <= s.len() {
        let Some(caps) = re.captures_at(s, pos) else {
            break;
        };
        let m = caps.get(0).expect("group 0 always participates");
        if py_boundary(s, m.end()) {
            pos = if m.end() > m.start() {
                m.end()
            } else {
                next_char(s, m.end())
            };
            found.push(caps);
        } else {
            pos = next_char(s, m.start());
        }
    }
    found
}

/// Like `Regex::replace_all`, but only for matches followed by a Python `\b`.
pub(crate) fn replace_before_boundary(
    re: &Regex,
    s: &str,
    mut replacement: impl FnMut(&regex::Captures<'_>) -> String,
) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for caps in captures_before_boundary(re, s) {
        let m = caps.get(0).expect("group 0 always participates");
        out.push_str(&s[last..m.start()]);
        out.push_str(&replacement(&caps));
        last = m.end();
    }
    out.push_str(&s[last..]);
    out
}

fn next_char(s: &str, i: usize) -> usize {
    i + s[i..].chars().next().map_or(1, char::len_utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace_includes_information_separators() {
        assert!(is_py_space('\u{1F}'));
        assert!(is_py_space('\u{3000}'));
        assert!(!is_py_space('\u{200B}'));
        assert_eq!(
            py_split(" a\u{1C}b\t c ").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn combining_marks_are_not_python_word_characters() {
        // "e" + COMBINING ACUTE: Python sees a boundary between the letter and the mark.
        assert!(py_boundary("e\u{301}", 1));
        assert!(!py_boundary("ab", 1));
        assert!(py_boundary("a", 0) && py_boundary("a", 1));
        assert!(!py_boundary("²2", "²".len()));
    }

    #[test]
    fn decimal_values_of_other_scripts() {
        assert_eq!(decimal_value('7'), Some(7));
        assert_eq!(decimal_value('\u{0663}'), Some(3)); // ARABIC-INDIC DIGIT THREE
        assert_eq!(decimal_value('\u{096F}'), Some(9)); // DEVANAGARI DIGIT NINE
        assert_eq!(decimal_value('\u{1D7D9}'), Some(1)); // MATHEMATICAL DOUBLE-STRUCK ONE
        assert_eq!(decimal_value('x'), None);
        assert_eq!(decimal_value('²'), None);
    }

    #[test]
    fn bounded_literals_prefer_earlier_alternatives_that_fit() {
        let r = BoundedLiterals::new(&[("mm", ""), ("mmm", "")], true, true);
        assert_eq!(r.replace_all("mmm mm mmmm"), "  mmmm");
        let r = BoundedLiterals::new(&[("n't", " not")], false, true);
        assert_eq!(r.replace_all("isn't isn'ts"), "is not isn'ts");
    }
}
