//! From token timings to words: splitting the text tokens into words, merging punctuation into
//! its neighbours, and openai-whisper's duration clamps at sentence and segment boundaries.

use serde::{Deserialize, Serialize};

/// One word of a segment, with its time span in seconds on the recording's timeline and the
/// mean probability of its tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Word {
    /// The word as decoded, with its leading space and any merged punctuation.
    pub word: String,
    pub start: f32,
    pub end: f32,
    pub probability: f32,
}

/// A word of one window while it is being aligned: times are relative to the window start.
#[derive(Clone, Debug, PartialEq)]
pub struct WordTiming {
    pub word: String,
    pub tokens: Vec<u32>,
    pub start: f32,
    pub end: f32,
    pub probability: f32,
}

/// openai-whisper's default punctuation merged into the word after it.
pub const PREPEND_PUNCTUATIONS: &str = "\"'“¿([{-";
/// openai-whisper's default punctuation merged into the word before it.
pub const APPEND_PUNCTUATIONS: &str = "\"'.。,，!！?？:：”)]}、";
/// Python's `string.punctuation`: a subword made of these starts no new word.
const ASCII_PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
/// Marks that end a sentence (words after them may be truncated, see [`clamp_sentence_ends`]).
const SENTENCE_END_MARKS: &str = ".。!！?？";
/// Languages written without spaces between words: split wherever the text is whole characters.
const UNSPACED_LANGUAGES: [&str; 6] = ["zh", "ja", "th", "lo", "my", "yue"];

/// Splits `tokens` into words (each with its tokens) the way openai-whisper's tokenizer does:
/// at every complete character for languages written without spaces, else at spaces and
/// punctuation. `decode` must render special tokens as text and broken UTF-8 as U+FFFD.
pub fn split_words(
    language: &str,
    tokens: &[u32],
    eot: u32,
    decode: impl Fn(&[u32]) -> String,
) -> Vec<(String, Vec<u32>)> {
    if UNSPACED_LANGUAGES.contains(&language) {
        split_on_unicode(tokens, decode)
    } else {
        split_on_spaces(tokens, eot, decode)
    }
}

/// Groups tokens so that each group decodes to whole characters (a multi-byte character may
/// span several byte-level tokens).
pub fn split_on_unicode(
    tokens: &[u32],
    decode: impl Fn(&[u32]) -> String,
) -> Vec<(String, Vec<u32>)> {
    const REPLACEMENT: char = '\u{FFFD}';
    let full: Vec<char> = decode(tokens).chars().collect();
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut offset = 0;
    for &t in tokens {
        current.push(t);
        let text = decode(&current);
        let complete = match text.chars().position(|c| c == REPLACEMENT) {
            None => true,
            // A replacement character that is also in the whole text is genuine, not a cut.
            Some(i) => full.get(offset + i) == Some(&REPLACEMENT),
        };
        if complete {
            offset += text.chars().count();
            out.push((text, std::mem::take(&mut current)));
        }
    }
    out
}

/// Words start at a subword with a leading space, at punctuation and at special tokens; other
/// subwords join the word before them.
pub fn split_on_spaces(
    tokens: &[u32],
    eot: u32,
    decode: impl Fn(&[u32]) -> String,
) -> Vec<(String, Vec<u32>)> {
    let mut words: Vec<(String, Vec<u32>)> = Vec::new();
    for (sub, sub_tokens) in split_on_unicode(tokens, decode) {
        let special = sub_tokens[0] >= eot;
        let with_space = sub.starts_with(' ');
        // Python's `in` on strings: a substring test, true for an empty subword too.
        let punctuation = ASCII_PUNCTUATION.contains(sub.trim());
        match words.last_mut() {
            Some((w, t)) if !(special || with_space || punctuation) => {
                w.push_str(&sub);
                t.extend(sub_tokens);
            }
            _ => words.push((sub, sub_tokens)),
        }
    }
    words
}

/// Word timings from token timings. `words` ends with the end-of-text "word"; `token_starts`
/// holds the start (in seconds) of every text token and of the end-of-text token;
/// `token_probs` the probability of every text token. Returns no words when there is no text.
pub fn word_timings(
    words: Vec<(String, Vec<u32>)>,
    token_starts: &[f32],
    token_probs: &[f32],
) -> Vec<WordTiming> {
    if words.len() <= 1 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(words.len() - 1);
    let mut begin = 0;
    for (word, tokens) in words.into_iter().take_while(|(_, t)| !t.is_empty()) {
        let end = begin + tokens.len();
        if end >= token_starts.len() {
            // The end-of-text word: it only marks where the last word ends.
            break;
        }
        let probs = &token_probs[begin..end.min(token_probs.len())];
        out.push(WordTiming {
            word,
            tokens,
            start: token_starts[begin],
            end: token_starts[end],
            probability: probs.iter().sum::<f32>() / probs.len().max(1) as f32,
        });
        begin = end;
    }
    out
}

/// The median length of the words that have one, capped at 0.7 s, and twice that: the longest
/// a word at a sentence or segment boundary may last.
pub fn median_and_max_duration(alignment: &[WordTiming]) -> (f32, f32) {
    let mut d: Vec<f32> = alignment
        .iter()
        .map(|w| w.end - w.start)
        .filter(|&d| d != 0.0)
        .collect();
    let median = if d.is_empty() {
        0.0
    } else {
        d.sort_by(f32::total_cmp);
        let n = d.len();
        if n % 2 == 1 {
            d[n / 2]
        } else {
            (d[n / 2 - 1] + d[n / 2]) / 2.0
        }
    };
    let median = median.min(0.7);
    (median, 2.0 * median)
}

/// Truncates a word longer than `max` when it is a sentence-end mark (its end moves) or follows
/// one (its start moves): the alignment tends to stretch words across pauses there.
pub fn clamp_sentence_ends(alignment: &mut [WordTiming], max: f32) {
    if !alignment.iter().any(|w| w.end - w.start != 0.0) {
        return;
    }
    for i in 1..alignment.len() {
        if alignment[i].end - alignment[i].start > max {
            if SENTENCE_END_MARKS.contains(alignment[i].word.as_str()) {
                alignment[i].end = alignment[i].start + max;
            } else if SENTENCE_END_MARKS.contains(alignment[i - 1].word.as_str()) {
                alignment[i].start = alignment[i].end - max;
            }
        }
    }
}

/// Moves opening punctuation (a word of `prepended` after a space) into the word after it and
/// closing punctuation (`appended`) into the word before it. Emptied entries keep their place
/// with no text and no tokens.
pub fn merge_punctuations(alignment: &mut [WordTiming], prepended: &str, appended: &str) {
    if alignment.len() >= 2 {
        let mut j = alignment.len() - 1;
        for i in (0..alignment.len() - 1).rev() {
            let prev = &alignment[i];
            if prev.word.starts_with(' ') && prepended.contains(prev.word.trim()) {
                let (word, tokens) = (
                    std::mem::take(&mut alignment[i].word),
                    std::mem::take(&mut alignment[i].tokens),
                );
                let next = &mut alignment[j];
                next.word.insert_str(0, &word);
                next.tokens.splice(0..0, tokens);
            } else {
                j = i;
            }
        }
    }
    let mut i = 0;
    for j in 1..alignment.len() {
        if !alignment[i].word.ends_with(' ') && appended.contains(alignment[j].word.as_str()) {
            let (word, tokens) = (
                std::mem::take(&mut alignment[j].word),
                std::mem::take(&mut alignment[j].tokens),
            );
            alignment[i].word.push_str(&word);
            alignment[i].tokens.extend(tokens);
        } else {
            i = j;
        }
    }
}

/// A segment of the window being aligned: its span (seconds, recording timeline), updated by
/// [`assign_to_segments`], and how many text tokens it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentSpan {
    pub start: f32,
    pub end: f32,
    pub text_tokens: usize,
}

/// Hands the window's words out to its segments in order (by token count), moves them onto the
/// recording's timeline (`time_offset`, rounded to 10 ms), and applies openai-whisper's
/// boundary rules: a first word after a pause is shortened to `max`; a segment starts at its
/// first word and ends at its last, unless that word overhangs the segment's own timestamp by
/// more than half a second, in which case the word is cut back instead. `last_speech` is the
/// end of the last speech before this window, updated here.
pub fn assign_to_segments(
    alignment: &[WordTiming],
    spans: &mut [SegmentSpan],
    time_offset: f32,
    (median, max): (f32, f32),
    last_speech: &mut f32,
) -> Vec<Vec<Word>> {
    let round2 = |x: f32| ((x as f64 * 100.0).round() / 100.0) as f32;
    let mut index = 0;
    let mut out = Vec::with_capacity(spans.len());
    for span in spans.iter_mut() {
        let mut saved = 0;
        let mut words: Vec<Word> = Vec::new();
        while index < alignment.len() && saved < span.text_tokens {
            let t = &alignment[index];
            if !t.word.is_empty() {
                words.push(Word {
                    word: t.word.clone(),
                    start: round2(time_offset + t.start),
                    end: round2(time_offset + t.end),
                    probability: t.probability,
                });
            }
            saved += t.tokens.len();
            index += 1;
        }
        if !words.is_empty() {
            adjust_segment_edges(&mut words, span, median, max, *last_speech);
            // The edge arithmetic leaves f32 noise (0.74000025): times stay on 10 ms.
            for w in &mut words {
                (w.start, w.end) = (round2(w.start), round2(w.end));
            }
            (span.start, span.end) = (round2(span.start), round2(span.end));
            *last_speech = span.end;
        }
        out.push(words);
    }
    out
}

fn adjust_segment_edges(
    words: &mut [Word],
    span: &mut SegmentSpan,
    median: f32,
    max: f32,
    last_speech: f32,
) {
    let n = words.len();
    // The first (and second) word after a pause tend to be stretched back into the pause.
    if words[0].end - last_speech > median * 4.0
        && (words[0].end - words[0].start > max
            || (n > 1 && words[1].end - words[0].start > max * 2.0))
    {
        if n > 1 && words[1].end - words[1].start > max {
            // openai-whisper halves the absolute end time here; kept for agreement with it.
            let boundary = (words[1].end / 2.0).max(words[1].end - max);
            words[0].end = boundary;
            words[1].start = boundary;
        }
        words[0].start = (words[0].end - max).max(0.0);
    }
    if span.start < words[0].end && span.start - 0.5 > words[0].start {
        words[0].start = (words[0].end - median).min(span.start).max(0.0);
    } else {
        span.start = words[0].start;
    }
    let last = &mut words[n - 1];
    if span.end > last.start && span.end + 0.5 < last.end {
        last.end = (last.start + median).max(span.end);
    } else {
        span.end = last.end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(word: &str, tokens: &[u32], start: f32, end: f32) -> WordTiming {
        WordTiming {
            word: word.into(),
            tokens: tokens.to_vec(),
            start,
            end,
            probability: 0.5,
        }
    }

    /// A toy tokenizer: token n is the n-th string; 99 is end-of-text.
    fn decode(tokens: &[u32]) -> String {
        const V: [&str; 6] = [" Hello", ",", " wor", "ld", " (", "yes"];
        tokens
            .iter()
            .map(|&t| V.get(t as usize).copied().unwrap_or("<|endoftext|>"))
            .collect()
    }

    #[test]
    fn words_split_at_spaces_and_punctuation() {
        let words = split_on_spaces(&[0, 1, 2, 3, 4, 5, 99], 99, decode);
        let texts: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(texts, [" Hello", ",", " world", " (yes", "<|endoftext|>"]);
        assert_eq!(words[2].1, vec![2, 3]);
    }

    #[test]
    fn unicode_split_keeps_multibyte_characters_whole() {
        // Tokens 1 and 2 are the two halves of "é" (0xC3 0xA9).
        let bytes = |t: u32| match t {
            0 => vec![b'a'],
            1 => vec![0xC3],
            2 => vec![0xA9],
            _ => b"<|endoftext|>".to_vec(),
        };
        let dec = |ts: &[u32]| {
            String::from_utf8_lossy(&ts.iter().flat_map(|&t| bytes(t)).collect::<Vec<_>>())
                .into_owned()
        };
        let words = split_on_unicode(&[0, 1, 2, 99], dec);
        let texts: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(texts, ["a", "é", "<|endoftext|>"]);
        assert_eq!(words[1].1, vec![1, 2]);
    }

    #[test]
    fn timings_come_from_token_starts() {
        let words = vec![
            (" Hi".to_string(), vec![7]),
            (" there".to_string(), vec![8, 9]),
            ("<|endoftext|>".to_string(), vec![99]),
        ];
        let w = word_timings(words, &[0.1, 0.4, 0.6, 0.9], &[0.9, 0.5, 0.7]);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].start, w[0].end), (0.1, 0.4));
        assert_eq!((w[1].start, w[1].end), (0.4, 0.9));
        assert!((w[1].probability - 0.6).abs() < 1e-6);
        assert!(word_timings(vec![("<|endoftext|>".into(), vec![99])], &[0.0], &[]).is_empty());
    }

    #[test]
    fn punctuation_merges_into_its_neighbours() {
        let mut a = vec![
            timing(" \"", &[1], 0.0, 0.1),
            timing("Hi", &[2], 0.1, 0.3),
            timing(",", &[3], 0.3, 0.3),
            timing(" you", &[4], 0.3, 0.5),
            timing(".\"", &[5], 0.5, 0.6),
        ];
        merge_punctuations(&mut a, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        let texts: Vec<&str> = a.iter().map(|w| w.word.as_str()).collect();
        // `.\"` is not a substring of the appended set, so it stays a word of its own.
        assert_eq!(texts, ["", " \"Hi,", "", " you", ".\""]);
        assert_eq!(a[1].tokens, vec![1, 2, 3]);
        assert_eq!((a[1].start, a[1].end), (0.1, 0.3));
        assert!(a[0].tokens.is_empty() && a[2].tokens.is_empty());
    }

    #[test]
    fn long_words_at_sentence_ends_are_truncated() {
        let mut a = vec![
            timing(" One", &[1], 0.0, 0.3),
            timing(".", &[2], 0.3, 2.0),
            timing(" Two", &[3], 2.0, 4.0),
            timing(" three", &[4], 4.0, 4.2),
        ];
        let (median, max) = median_and_max_duration(&a);
        assert!((median - 0.7).abs() < 1e-6, "capped at 0.7: {median}");
        clamp_sentence_ends(&mut a, max);
        assert!((a[1].end - (0.3 + max)).abs() < 1e-6);
        assert!((a[2].start - (4.0 - max)).abs() < 1e-6);
        assert_eq!((a[3].start, a[3].end), (4.0, 4.2));
    }

    #[test]
    fn segments_take_their_words_and_edges() {
        let a = vec![
            timing(" a", &[1], 0.0, 0.2),
            timing(" b", &[2, 3], 0.2, 0.5),
            timing(" c", &[4], 0.6, 0.9),
        ];
        let mut spans = vec![
            SegmentSpan {
                start: 10.0,
                end: 10.4,
                text_tokens: 3,
            },
            SegmentSpan {
                start: 10.4,
                end: 11.0,
                text_tokens: 1,
            },
        ];
        let mut last = 10.0;
        let words = assign_to_segments(&a, &mut spans, 10.0, (0.3, 0.6), &mut last);
        assert_eq!(words[0].len(), 2);
        assert_eq!(words[1][0].word, " c");
        assert_eq!((words[1][0].start, words[1][0].end), (10.6, 10.9));
        // Segments snap to their words.
        assert_eq!((spans[0].start, spans[0].end), (10.0, 10.5));
        assert_eq!((spans[1].start, spans[1].end), (10.6, 10.9));
        assert_eq!(last, 10.9);
    }

    #[test]
    fn an_overlong_last_word_is_cut_back_to_the_segment() {
        let a = vec![timing(" a", &[1], 0.0, 0.2), timing(" b", &[2], 0.2, 3.0)];
        let mut spans = vec![SegmentSpan {
            start: 0.0,
            end: 1.0,
            text_tokens: 2,
        }];
        let mut last = 0.0;
        let words = assign_to_segments(&a, &mut spans, 0.0, (0.2, 0.4), &mut last);
        assert_eq!(words[0][1].end, 1.0);
        assert_eq!(spans[0].end, 1.0);
    }
}
