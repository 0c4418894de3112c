//! Every numeric flag has its domain checked by the command line itself: zero, negative,
//! non-numbers and absurdly large values fail at once (before any model or audio is read) with
//! a message naming the flag.

use std::process::Command;

fn rejected(args: &[&str], flag: &str) {
    let run = Command::new(env!("CARGO_BIN_EXE_xdna-whisper"))
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{args:?} must fail: {stderr}");
    assert!(
        stderr.contains(flag) && stderr.contains("invalid value"),
        "{args:?}: the message must name {flag}: {stderr}"
    );
    // Rejected while parsing: no model was loaded, no audio read.
    assert!(!stderr.contains("/no/such.wav"), "{stderr}");
}

#[test]
fn transcribe_rejects_out_of_domain_numbers() {
    for (flag, value) in [
        ("--beam-size", "0"),
        ("--beam-size", "-1"),
        ("--beam-size", "100000"),
        ("--beam-size", "five"),
        ("--threads", "-2"),
        ("--threads", "1000000"),
    ] {
        // `--flag=value`: clap would read a lone `-1` as an option.
        let arg = format!("{flag}={value}");
        rejected(&["transcribe", &arg, "/no/such.wav"], flag);
    }
}

#[test]
fn serve_rejects_out_of_domain_numbers() {
    for (flag, value) in [
        ("--workers", "0"),
        ("--queue", "-1"),
        ("--max-upload-mb", "0"),
        ("--max-upload-mb", "10000000"),
        ("--max-audio-seconds", "0"),
        ("--max-audio-seconds", "-5"),
        ("--max-audio-seconds", "NaN"),
        ("--max-audio-seconds", "inf"),
        ("--request-timeout", "0"),
        ("--request-timeout", "99999999999"),
        ("--shutdown-timeout", "-1"),
        ("--beam-size", "0"),
    ] {
        let arg = format!("{flag}={value}");
        rejected(&["serve", &arg], flag);
    }
}

#[test]
fn the_limits_themselves_are_accepted_by_the_parser() {
    // The edge values parse: the command then fails only on the missing file.
    let run = Command::new(env!("CARGO_BIN_EXE_xdna-whisper"))
        .env("RUST_LOG", "warn")
        .args([
            "transcribe",
            "--beam-size",
            "64",
            "--threads",
            "1",
            "--model",
        ])
        .arg("/no/such/model")
        .arg("/no/such.wav")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(!stderr.contains("invalid value"), "{stderr}");
}
