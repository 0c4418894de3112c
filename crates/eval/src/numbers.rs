//! Spelled-out English numbers to digits, with exactly the behaviour of Whisper's
//! `EnglishNumberNormalizer`, quirks included ("nineth" is an ordinal, "ninth" is not; a lone
//! "point" before a multiplier disappears), because WER is only comparable when both sides are
//! normalised the same way.
//!
//! Numbers can outgrow any machine integer ("one two three … million" builds a string of
//! digits that is then scaled), so values are kept as `BigUint` or as digit strings.

use std::collections::{HashMap, HashSet};

use num_bigint::BigUint;
use regex::Regex;

use super::pytext::{self, py_split, BoundedLiterals, PY_SPACE};

const ONES: [&str; 19] = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];

const TENS: [(&str, u32); 8] = [
    ("twenty", 20),
    ("thirty", 30),
    ("forty", 40),
    ("fifty", 50),
    ("sixty", 60),
    ("seventy", 70),
    ("eighty", 80),
    ("ninety", 90),
];

/// Multiplier words and their power of ten.
const MULTIPLIERS: [(&str, u32); 12] = [
    ("hundred", 2),
    ("thousand", 3),
    ("million", 6),
    ("billion", 9),
    ("trillion", 12),
    ("quadrillion", 15),
    ("quintillion", 18),
    ("sextillion", 21),
    ("septillion", 24),
    ("octillion", 27),
    ("nonillion", 30),
    ("decillion", 33),
];

const ZEROS: [&str; 3] = ["o", "oh", "zero"];

/// Sign words, applied to a number that follows.
const PRECEDING_PREFIXERS: [(&str, &str); 4] = [
    ("minus", "-"),
    ("negative", "-"),
    ("plus", "+"),
    ("positive", "+"),
];

/// Currency words, turned into a symbol before the number they follow.
const FOLLOWING_PREFIXERS: [(&str, &str); 8] = [
    ("pound", "£"),
    ("pounds", "£"),
    ("euro", "€"),
    ("euros", "€"),
    ("dollar", "$"),
    ("dollars", "$"),
    ("cent", "¢"),
    ("cents", "¢"),
];

const SPECIALS: [&str; 4] = ["and", "double", "triple", "point"];

/// A number being accumulated: an integer, or digits (possibly with a decimal point) that are
/// glued together rather than added ("one oh one" → "101").
#[derive(Clone, Debug)]
enum Value {
    Int(BigUint),
    Digits(String),
}

impl Value {
    fn render(&self) -> String {
        match self {
            Value::Int(n) => n.to_string(),
            Value::Digits(s) => s.clone(),
        }
    }
}

/// The text of a value where an absent value or integer zero counts as nothing (Python's
/// `str(value or "")`).
fn render_or_empty(value: &Option<Value>) -> String {
    match value {
        None => String::new(),
        Some(Value::Int(n)) if *n == BigUint::ZERO => String::new(),
        Some(v) => v.render(),
    }
}

/// An exact decimal `numerator / 10^scale`.
struct Decimal {
    numerator: BigUint,
    scale: u32,
}

impl Decimal {
    /// Parses what Python's `Fraction(str)` accepts among the strings this normaliser builds:
    /// decimal digits (any script) with at most one `.`, and at least one digit.
    fn parse(s: &str) -> Option<Decimal> {
        let (int_part, frac_part) = match s.split_once('.') {
            Some((a, b)) => (a, b),
            None => (s, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let mut numerator = BigUint::ZERO;
        for c in int_part.chars().chain(frac_part.chars()) {
            numerator = numerator * 10u32 + pytext::decimal_value(c)?;
        }
        let scale = u32::try_from(frac_part.chars().count()).ok()?;
        Some(Decimal { numerator, scale })
    }

    fn from_value(value: &Value) -> Option<Decimal> {
        match value {
            Value::Int(n) => Some(Decimal {
                numerator: n.clone(),
                scale: 0,
            }),
            Value::Digits(s) => Decimal::parse(s),
        }
    }

    /// The value as an integer when it is one.
    fn to_integer(&self) -> Option<BigUint> {
        let divisor = BigUint::from(10u32).pow(self.scale);
        (&self.numerator % &divisor == BigUint::ZERO).then(|| &self.numerator / divisor)
    }

    /// The value times `10^power`, when that is an integer.
    fn scaled_integer(&self, power: u32) -> Option<BigUint> {
        Decimal {
            numerator: &self.numerator * BigUint::from(10u32).pow(power),
            scale: self.scale,
        }
        .to_integer()
    }
}

/// Python's `re.match(r"^\d+(\.\d+)?$", s)` on a single token.
fn is_numeric(s: &str) -> bool {
    fn digits(s: &str) -> bool {
        !s.is_empty() && s.chars().all(|c| pytext::decimal_value(c).is_some())
    }
    match s.split_once('.') {
        Some((a, b)) => digits(a) && digits(b),
        None => digits(s),
    }
}

fn ten_pow(power: u32) -> BigUint {
    BigUint::from(10u32).pow(power)
}

/// Converts spelled-out numbers to digits: "twenty first" → "21st", "one hundred and five" →
/// "105", "two point five million dollars" → "$2500000", "ten per cent" → "10%",
/// "double oh seven" → "007", and keeps "one"/"ones" spelled out.
pub struct EnglishNumberNormalizer {
    ones: HashMap<String, u32>,
    /// "twos", "sixes" (plural, suffix "s") and "first", "nineth" (ordinal).
    ones_suffixed: HashMap<String, (u32, &'static str)>,
    tens: HashMap<String, u32>,
    tens_suffixed: HashMap<String, (u32, &'static str)>,
    multipliers: HashMap<String, u32>,
    multipliers_suffixed: HashMap<String, (u32, &'static str)>,
    decimals: HashSet<String>,
    words: HashSet<String>,
    prefixes: Vec<char>,
    and_a_half: Regex,
    letter_digit: Regex,
    digit_letter: Regex,
    digit_suffix: Regex,
    cents_after_amount: Regex,
    cents_only: Regex,
    spelled_one: BoundedLiterals,
}

impl Default for EnglishNumberNormalizer {
    fn default() -> Self {
        Self::new()
    }
}

impl EnglishNumberNormalizer {
    pub fn new() -> Self {
        let ones: HashMap<String, u32> = ONES
            .iter()
            .zip(1u32..)
            .map(|(name, value)| (name.to_string(), value))
            .collect();
        let mut ones_suffixed = HashMap::new();
        for (name, value) in ONES.iter().zip(1u32..) {
            let plural = if *name == "six" {
                "sixes".to_string()
            } else {
                format!("{name}s")
            };
            ones_suffixed.insert(plural, (value, "s"));
        }
        for (name, value, suffix) in [
            ("zeroth", 0, "th"),
            ("first", 1, "st"),
            ("second", 2, "nd"),
            ("third", 3, "rd"),
            ("fifth", 5, "th"),
            ("twelfth", 12, "th"),
        ] {
            ones_suffixed.insert(name.to_string(), (value, suffix));
        }
        for (name, value) in ONES.iter().zip(1u32..) {
            if value > 3 && value != 5 && value != 12 {
                // Built mechanically, as the reference does: "eighth", but also "nineth".
                let ordinal = if name.ends_with('t') {
                    format!("{name}h")
                } else {
                    format!("{name}th")
                };
                ones_suffixed.insert(ordinal, (value, "th"));
            }
        }

        let tens: HashMap<String, u32> = TENS.iter().map(|&(n, v)| (n.to_string(), v)).collect();
        let mut tens_suffixed = HashMap::new();
        for &(name, value) in &TENS {
            tens_suffixed.insert(name.replace('y', "ies"), (value, "s"));
            tens_suffixed.insert(name.replace('y', "ieth"), (value, "th"));
        }

        let multipliers: HashMap<String, u32> = MULTIPLIERS
            .iter()
            .map(|&(n, p)| (n.to_string(), p))
            .collect();
        let mut multipliers_suffixed = HashMap::new();
        for &(name, power) in &MULTIPLIERS {
            multipliers_suffixed.insert(format!("{name}s"), (power, "s"));
            multipliers_suffixed.insert(format!("{name}th"), (power, "th"));
        }

        let decimals: HashSet<String> = ones
            .keys()
            .chain(tens.keys())
            .cloned()
            .chain(ZEROS.iter().map(|z| z.to_string()))
            .collect();

        let mut words: HashSet<String> = HashSet::new();
        words.extend(ZEROS.iter().map(|w| w.to_string()));
        words.extend(ones.keys().cloned());
        words.extend(ones_suffixed.keys().cloned());
        words.extend(tens.keys().cloned());
        words.extend(tens_suffixed.keys().cloned());
        words.extend(multipliers.keys().cloned());
        words.extend(multipliers_suffixed.keys().cloned());
        words.extend(PRECEDING_PREFIXERS.iter().map(|(w, _)| w.to_string()));
        words.extend(FOLLOWING_PREFIXERS.iter().map(|(w, _)| w.to_string()));
        words.extend(["per", "percent"].map(String::from));
        words.extend(SPECIALS.iter().map(|w| w.to_string()));

        let prefixes = PRECEDING_PREFIXERS
            .iter()
            .chain(FOLLOWING_PREFIXERS.iter())
            .map(|(_, symbol)| symbol.chars().next().expect("one-char symbol"))
            .collect();

        let re = |pattern: &str| Regex::new(pattern).expect("valid built-in pattern");
        Self {
            ones,
            ones_suffixed,
            tens,
            tens_suffixed,
            multipliers,
            multipliers_suffixed,
            decimals,
            words,
            prefixes,
            and_a_half: re(&format!("and{PY_SPACE}+a{PY_SPACE}+half")),
            letter_digit: re("([a-z])([0-9])"),
            digit_letter: re("([0-9])([a-z])"),
            digit_suffix: re(&format!("([0-9]){PY_SPACE}+(st|nd|rd|th|s)")),
            cents_after_amount: re("([€£$])([0-9]+) (?:and )?¢([0-9]{1,2})"),
            cents_only: re("[€£$]0.([0-9]{1,2})"),
            spelled_one: BoundedLiterals::new(&[("1s", "ones"), ("1", "one")], true, true),
        }
    }

    /// Normalises the numbers in `s` (expected lower-case, without punctuation other than
    /// number symbols, as `EnglishTextNormalizer` prepares it).
    pub fn normalize(&self, s: &str) -> String {
        let s = self.preprocess(s);
        let words: Vec<&str> = py_split(&s).collect();
        let s = self.process_words(&words).join(" ");
        self.postprocess(&s)
    }

    /// "<number> and a half" → "<number> point five"; spaces at letter/digit boundaries, except
    /// before ordinal and plural suffixes.
    fn preprocess(&self, s: &str) -> String {
        // Split on "and a half" where it stands as whole words (Python `\b` on both ends).
        let mut segments = Vec::new();
        let mut last = 0;
        let mut pos = 0;
        while let Some(m) = self.and_a_half.find_at(s, pos) {
            if pytext::py_boundary(s, m.start()) && pytext::py_boundary(s, m.end()) {
                segments.push(&s[last..m.start()]);
                last = m.end();
                pos = m.end();
            } else {
                pos = m.start() + 1; // the match starts with ASCII 'a'
            }
        }
        segments.push(&s[last..]);

        let mut results: Vec<&str> = Vec::new();
        let count = segments.len();
        for (i, segment) in segments.into_iter().enumerate() {
            if py_split(segment).next().is_none() {
                continue;
            }
            results.push(segment);
            if i + 1 < count {
                let last_word = py_split(segment).last().expect("segment has a word");
                if self.decimals.contains(last_word) || self.multipliers.contains_key(last_word) {
                    results.push("point five");
                } else {
                    results.push("and a half");
                }
            }
        }
        let s = results.join(" ");

        let s = self.letter_digit.replace_all(&s, "$1 $2");
        let s = self.digit_letter.replace_all(&s, "$1 $2");
        pytext::replace_before_boundary(&self.digit_suffix, &s, |caps| {
            format!("{}{}", &caps[1], &caps[2])
        })
    }

    /// Merges "$2 and ¢7" into "$2.07", turns "$0.07" into "¢7", and writes a lone "1" as "one".
    fn postprocess(&self, s: &str) -> String {
        let s = pytext::replace_before_boundary(&self.cents_after_amount, s, |caps| {
            let cents: u32 = caps[3].parse().expect("one or two ASCII digits");
            format!("{}{}.{cents:02}", &caps[1], &caps[2])
        });
        let s = pytext::replace_before_boundary(&self.cents_only, &s, |caps| {
            let cents: u32 = caps[1].parse().expect("one or two ASCII digits");
            format!("¢{cents}")
        });
        self.spelled_one.replace_all(&s)
    }

    fn process_words(&self, words: &[&str]) -> Vec<String> {
        let mut state = State::default();
        let mut skip = false;
        for (i, &current) in words.iter().enumerate() {
            if skip {
                skip = false;
                continue;
            }
            let prev = i.checked_sub(1).map(|j| words[j]);
            let next = words.get(i + 1).copied();
            skip = self.process_word(&mut state, prev, current, next);
        }
        if let Some(value) = state.value.take() {
            state.emit(value.render());
        }
        state.out
    }

    /// Handles one word; returns whether the next word was consumed too.
    fn process_word(
        &self,
        st: &mut State,
        prev: Option<&str>,
        current: &str,
        next: Option<&str>,
    ) -> bool {
        let next_is_numeric = next.is_some_and(is_numeric);
        let next_is_word = next.is_some_and(|n| self.words.contains(n));
        let prev_in = |map: &HashMap<String, u32>| prev.is_some_and(|p| map.contains_key(p));

        let first = current
            .chars()
            .next()
            .expect("split never yields empty words");
        let has_prefix = self.prefixes.contains(&first);
        let without_prefix = if has_prefix {
            &current[first.len_utf8()..]
        } else {
            current
        };

        if is_numeric(without_prefix) {
            // Arabic numerals, possibly after a sign or currency symbol.
            let decimal = Decimal::parse(without_prefix).expect("numeric tokens parse");
            if let Some(value) = &st.value {
                if let Value::Digits(digits) = value {
                    if digits.ends_with('.') {
                        // Digits after "point": glue on, prefix and all (as for IP addresses).
                        st.value = Some(Value::Digits(format!("{digits}{current}")));
                        return false;
                    }
                }
                st.flush_value();
            }
            if has_prefix {
                st.prefix = Some(first.to_string());
            }
            st.value = Some(match decimal.to_integer() {
                Some(n) => Value::Int(n),
                None => Value::Digits(without_prefix.to_string()),
            });
        } else if !self.words.contains(current) {
            st.flush_value();
            st.emit(current.to_string());
        } else if ZEROS.contains(&current) {
            st.value = Some(Value::Digits(render_or_empty(&st.value) + "0"));
        } else if let Some(&ones) = self.ones.get(current) {
            let unit = if ones < 10 { 10 } else { 100 };
            st.value = Some(match st.value.take() {
                None => Value::Int(BigUint::from(ones)),
                Some(Value::Int(n)) if !prev_in(&self.ones) => add_or_append(n, ones, unit),
                Some(value) => Value::Digits(append_digit_after(&value, ones, prev_in(&self.tens))),
            });
        } else if let Some(&(ones, suffix)) = self.ones_suffixed.get(current) {
            let unit = if ones < 10 { 10 } else { 100 };
            let text = match st.value.take() {
                None => ones.to_string(),
                Some(Value::Int(n)) if !prev_in(&self.ones) => {
                    add_or_append(n, ones, unit).render()
                }
                Some(value) => append_digit_after(&value, ones, prev_in(&self.tens)),
            };
            st.emit(text + suffix);
        } else if let Some(&tens) = self.tens.get(current) {
            st.value = Some(match st.value.take() {
                None => Value::Int(BigUint::from(tens)),
                Some(Value::Digits(d)) => Value::Digits(format!("{d}{tens}")),
                Some(Value::Int(n)) => add_or_append(n, tens, 100),
            });
        } else if let Some(&(tens, suffix)) = self.tens_suffixed.get(current) {
            let text = match st.value.take() {
                None => tens.to_string(),
                Some(Value::Digits(d)) => format!("{d}{tens}"),
                Some(Value::Int(n)) => add_or_append(n, tens, 100).render(),
            };
            st.emit(text + suffix);
        } else if let Some(&power) = self.multipliers.get(current) {
            let value = match st.value.take() {
                None => Value::Int(ten_pow(power)),
                Some(Value::Int(n)) if n != BigUint::ZERO => Value::Int(scale_last_group(n, power)),
                // Digits (or zero) scale as an exact decimal: "1.5 million" → 1500000.
                Some(value) => {
                    match Decimal::from_value(&value).and_then(|d| d.scaled_integer(power)) {
                        Some(n) => Value::Int(n),
                        None => {
                            st.emit(value.render());
                            Value::Int(ten_pow(power))
                        }
                    }
                }
            };
            st.value = Some(value);
        } else if let Some(&(power, suffix)) = self.multipliers_suffixed.get(current) {
            match st.value.take() {
                None => st.emit(ten_pow(power).to_string() + suffix),
                Some(Value::Digits(d)) => {
                    match Decimal::parse(&d).and_then(|x| x.scaled_integer(power)) {
                        Some(n) => st.emit(n.to_string() + suffix),
                        None => {
                            st.emit(d);
                            st.emit(ten_pow(power).to_string() + suffix);
                        }
                    }
                }
                Some(Value::Int(n)) => st.emit(scale_last_group(n, power).to_string() + suffix),
            }
        } else if let Some(&(_, sign)) = PRECEDING_PREFIXERS.iter().find(|(w, _)| *w == current) {
            st.flush_value();
            if next_is_word || next_is_numeric {
                st.prefix = Some(sign.to_string());
            } else {
                st.emit(current.to_string());
            }
        } else if let Some(&(_, symbol)) = FOLLOWING_PREFIXERS.iter().find(|(w, _)| *w == current) {
            if let Some(value) = st.value.take() {
                st.prefix = Some(symbol.to_string());
                st.emit(value.render());
            } else {
                st.emit(current.to_string());
            }
        } else if current == "per" || current == "percent" {
            match st.value.take() {
                None => st.emit(current.to_string()),
                Some(value) if current == "percent" => st.emit(value.render() + "%"),
                Some(value) => {
                    if next == Some("cent") {
                        st.emit(value.render() + "%");
                        return true;
                    }
                    st.emit(value.render());
                    st.emit(current.to_string());
                }
            }
        } else {
            // "and", "double", "triple", "point": only special before something numeric.
            if !next_is_word && !next_is_numeric {
                st.flush_value();
                st.emit(current.to_string());
            } else if current == "and" {
                // "and" inside a number ("hundred and five") disappears.
                if !prev_in(&self.multipliers) {
                    st.flush_value();
                    st.emit(current.to_string());
                }
            } else if current == "double" || current == "triple" {
                let next_word = next.expect("next is a word here");
                if self.ones.contains_key(next_word) || ZEROS.contains(&next_word) {
                    let repeats = if current == "double" { 2 } else { 3 };
                    let digit = self.ones.get(next_word).copied().unwrap_or(0);
                    let value = render_or_empty(&st.value) + &digit.to_string().repeat(repeats);
                    st.value = Some(Value::Digits(value));
                    return true;
                }
                st.flush_value();
                st.emit(current.to_string());
            } else {
                debug_assert_eq!(current, "point");
                if next.is_some_and(|n| self.decimals.contains(n)) || next_is_numeric {
                    st.value = Some(Value::Digits(render_or_empty(&st.value) + "."));
                }
            }
        }
        false
    }
}

/// Appends a ones digit to a value that is built digit by digit. After a tens word the last
/// digit is the tens' zero, which the ones digit replaces ("one twenty one" → "121").
fn append_digit_after(value: &Value, ones: u32, after_tens: bool) -> String {
    let text = value.render();
    match text.strip_suffix('0') {
        Some(head) if after_tens && ones < 10 => format!("{head}{ones}"),
        _ => format!("{text}{ones}"),
    }
}

/// Adds `small` to `n` when `n` is a round multiple of `unit` ("twenty" + "one"), otherwise
/// writes the digits next to each other ("nineteen" "ninety" → "1990").
fn add_or_append(n: BigUint, small: u32, unit: u32) -> Value {
    if &n % unit == BigUint::ZERO {
        Value::Int(n + small)
    } else {
        Value::Digits(format!("{n}{small}"))
    }
}

/// Multiplies the last group of three digits by `10^power`: "two thousand five" + "hundred"
/// scales only the five.
fn scale_last_group(n: BigUint, power: u32) -> BigUint {
    let residual = &n % 1000u32;
    let before = n - &residual;
    before + residual * ten_pow(power)
}

/// The words emitted so far, the value being accumulated and a pending sign/currency prefix.
#[derive(Default)]
struct State {
    out: Vec<String>,
    value: Option<Value>,
    prefix: Option<String>,
}

impl State {
    /// Emits `text` with the pending prefix; clears the prefix and the accumulated value.
    fn emit(&mut self, text: String) {
        let text = match self.prefix.take() {
            Some(prefix) => prefix + &text,
            None => text,
        };
        self.value = None;
        self.out.push(text);
    }

    /// Emits the accumulated value, if any.
    fn flush_value(&mut self) {
        if let Some(value) = self.value.take() {
            self.emit(value.render());
        }
    }
}
