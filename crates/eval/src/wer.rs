//! Word error rate: the minimum number of word substitutions, deletions and insertions that
//! turn the reference into the hypothesis (Levenshtein distance over words), divided by the
//! number of reference words. Over a corpus, errors and reference words are summed first.

use std::iter::Sum;
use std::ops::{Add, AddAssign};

/// Edit counts of one optimal alignment of a hypothesis against a reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WordErrors {
    pub substitutions: usize,
    pub deletions: usize,
    pub insertions: usize,
    pub ref_words: usize,
}

impl WordErrors {
    pub fn errors(&self) -> usize {
        self.substitutions + self.deletions + self.insertions
    }

    /// Reference words the hypothesis got right.
    pub fn hits(&self) -> usize {
        self.ref_words - self.substitutions - self.deletions
    }

    /// errors / reference words. With no reference words: 0 when the hypothesis is empty too,
    /// otherwise infinite (every word is an insertion against nothing).
    pub fn wer(&self) -> f64 {
        match (self.errors(), self.ref_words) {
            (0, _) => 0.0,
            (_, 0) => f64::INFINITY,
            (e, n) => e as f64 / n as f64,
        }
    }
}

impl Add for WordErrors {
    type Output = WordErrors;
    fn add(self, o: WordErrors) -> WordErrors {
        WordErrors {
            substitutions: self.substitutions + o.substitutions,
            deletions: self.deletions + o.deletions,
            insertions: self.insertions + o.insertions,
            ref_words: self.ref_words + o.ref_words,
        }
    }
}

impl AddAssign for WordErrors {
    fn add_assign(&mut self, o: WordErrors) {
        *self = *self + o;
    }
}

impl Sum for WordErrors {
    fn sum<I: Iterator<Item = WordErrors>>(iter: I) -> WordErrors {
        iter.fold(WordErrors::default(), Add::add)
    }
}

/// Cost of the best alignment of a reference prefix with a hypothesis prefix, and its edits.
#[derive(Clone, Copy, Default)]
struct Cell {
    cost: usize,
    sub: usize,
    del: usize,
    ins: usize,
}

impl Cell {
    fn step(self, sub: usize, del: usize, ins: usize) -> Cell {
        Cell {
            cost: self.cost + sub + del + ins,
            sub: self.sub + sub,
            del: self.del + del,
            ins: self.ins + ins,
        }
    }
}

/// Aligns `hypothesis` against `reference` with minimum edit count. Among equally short
/// alignments, matches and substitutions are preferred over deletions, and deletions over
/// insertions. Memory is linear in the hypothesis length.
pub fn word_errors<R: AsRef<str>, H: AsRef<str>>(reference: &[R], hypothesis: &[H]) -> WordErrors {
    // row[j]: best alignment of the first i reference words with the first j hypothesis words.
    let mut row: Vec<Cell> = (0..=hypothesis.len())
        .map(|j| Cell {
            cost: j,
            ins: j,
            ..Cell::default()
        })
        .collect();
    for (i, r) in reference.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = Cell {
            cost: i + 1,
            del: i + 1,
            ..Cell::default()
        };
        for (j, h) in hypothesis.iter().enumerate() {
            let mismatch = usize::from(r.as_ref() != h.as_ref());
            let candidates = [
                diagonal.step(mismatch, 0, 0),
                row[j + 1].step(0, 1, 0), // reference word deleted
                row[j].step(0, 0, 1),     // hypothesis word inserted
            ];
            diagonal = row[j + 1];
            // min_by_key keeps the first of equal costs: the preference order above.
            row[j + 1] = *candidates
                .iter()
                .min_by_key(|c| c.cost)
                .expect("three candidates");
        }
    }
    let best = row[hypothesis.len()];
    WordErrors {
        substitutions: best.sub,
        deletions: best.del,
        insertions: best.ins,
        ref_words: reference.len(),
    }
}

/// Word error rate of one hypothesis (see [`WordErrors::wer`] for an empty reference).
pub fn wer<R: AsRef<str>, H: AsRef<str>>(reference: &[R], hypothesis: &[H]) -> f64 {
    word_errors(reference, hypothesis).wer()
}

/// Corpus word error rate: all errors over all reference words.
pub fn corpus_wer(per_utterance: impl IntoIterator<Item = WordErrors>) -> f64 {
    per_utterance.into_iter().sum::<WordErrors>().wer()
}
