//! `xdna-whisper batch` end to end on a small archive (tiny.en, clips of
//! `../shared/data/speech`): outputs and records, a broken and a missing file failing alone
//! (exit 2), reruns that skip, shards that add up to the whole, and runs killed at random
//! points that, rerun, leave exactly the tree of an uninterrupted run.

mod batch_common;
#[path = "../../model/tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use batch_common::*;

#[test]
fn an_archive_is_transcribed_failures_recorded_and_reruns_skip() {
    let d = tempfile::tempdir().unwrap();
    let archive = d.path().join("archive");
    let Some(ids) = make_archive(&archive) else {
        return;
    };
    std::fs::write(archive.join("tape1/broken.wav"), "RIFF....not a recording").unwrap();
    std::fs::write(archive.join("notes.txt"), "not listed: not audio").unwrap();
    let out = d.path().join("out");
    let sum = d.path().join("summary.json");

    let run = batch()
        .arg(&archive)
        .arg("--output")
        .arg(&out)
        .args(["--format", "txt,srt,json", "--summary-json"])
        .arg(&sum)
        .output()
        .unwrap();
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(2), "one file is broken: {err}");
    let s = summary(&sum);
    assert_eq!(
        (s["done"].as_u64(), s["failed"].as_u64()),
        (Some(5), Some(1)),
        "{s}"
    );
    assert!(s["audio_seconds"].as_f64().unwrap() > 15.0, "{s}");
    assert!(err.contains("5 done, 0 skipped, 1 failed"), "{err}");

    // Every input has an index entry; done ones point at a record whose outputs match.
    let mut keys = BTreeSet::new();
    for id in ids.iter().map(String::as_str).chain(["tape1/broken.wav"]) {
        let entry = read_json(&out.join(whisper_batch::IndexEntry::name(id)));
        assert_eq!(entry["input_id"], id);
        let key = entry["key"].as_str().unwrap().to_string();
        let record = read_json(&out.join(format!("{key}.json")));
        assert_eq!(record["input_id"], id);
        if id == "tape1/broken.wav" {
            assert_eq!(record["status"], "failed");
            assert!(
                record["error"].as_str().unwrap().contains("broken.wav"),
                "{record}"
            );
            continue;
        }
        assert_eq!(record["status"], "done", "{record}");
        assert_eq!(record["model"]["name"], "tiny.en");
        assert_eq!(record["options"]["beam_size"], 1);
        let names: Vec<&str> = record["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                format!("{key}.txt"),
                format!("{key}.srt"),
                format!("{key}.transcript.json")
            ]
        );
        for o in record["outputs"].as_array().unwrap() {
            let bytes = std::fs::read(out.join(o["name"].as_str().unwrap())).unwrap();
            assert_eq!(o["sha256"].as_str().unwrap(), sha256(&bytes));
        }
        keys.insert(key);
    }
    assert_eq!(keys.len(), 5);
    let jfk = &ids[0];
    let jfk_key = read_json(&out.join(whisper_batch::IndexEntry::name(jfk)))["key"]
        .as_str()
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(out.join(format!("{jfk_key}.txt"))).unwrap();
    assert!(
        text.to_lowercase().contains("ask not what your country"),
        "{text}"
    );

    // Rerun: the done ones are skipped, the broken one retried (and failed again) unless told.
    let before = tree(&out);
    let again = batch()
        .arg(&archive)
        .arg("--output")
        .arg(&out)
        .args(["--format", "txt,srt,json", "--summary-json"])
        .arg(&sum)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    let s = summary(&sum);
    assert_eq!(
        (
            s["done"].as_u64(),
            s["skipped"].as_u64(),
            s["failed"].as_u64()
        ),
        (Some(0), Some(5), Some(1)),
        "{s}"
    );
    assert_eq!(tree(&out), before, "a rerun changes nothing");
    let lazy = batch()
        .arg(&archive)
        .arg("--output")
        .arg(&out)
        .args([
            "--format",
            "txt,srt,json",
            "--skip-failed",
            "--summary-json",
        ])
        .arg(&sum)
        .output()
        .unwrap();
    assert_eq!(lazy.status.code(), Some(2), "{}", stderr(&lazy));
    assert_eq!(summary(&sum)["skipped_failed"], 1);

    // A corrupt output is redone; an output of another input with the same audio and options
    // (same key) is shared: a manifest naming jfk under another id skips it.
    std::fs::write(out.join(format!("{jfk_key}.srt")), "garbage").unwrap();
    let manifest = archive.join("list.jsonl");
    std::fs::write(
        &manifest,
        format!("{{\"path\": \"{jfk}\", \"id\": \"speech-1\"}}\n\n{{\"path\": \"missing.wav\"}}\n{{\"path\": \"{}\", \"beam_size\": 2}}\n", ids[1]),
    )
    .unwrap();
    let m = batch()
        .arg(&manifest)
        .arg("--output")
        .arg(&out)
        .args(["--format", "txt,srt,json", "--summary-json"])
        .arg(&sum)
        .output()
        .unwrap();
    let err = stderr(&m);
    assert_eq!(m.status.code(), Some(2), "{err}");
    let s = summary(&sum);
    assert_eq!(
        (s["done"].as_u64(), s["failed"].as_u64()),
        (Some(2), Some(1)),
        "jfk's srt was corrupt, beam 2 is new: {s}"
    );
    assert!(err.contains("missing.wav"), "{err}");
    let missing = read_json(&out.join(whisper_batch::IndexEntry::name("missing.wav")));
    assert_eq!(
        (missing["status"].as_str(), missing["key"].as_str()),
        (Some("failed"), None)
    );
    assert_eq!(
        std::fs::read(out.join(format!("{jfk_key}.srt"))).unwrap(),
        before[&format!("{jfk_key}.srt")]
    );
    let beam2 = read_json(&out.join(whisper_batch::IndexEntry::name(&ids[1])))["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!keys.contains(&beam2), "other options, other key");

    // A bad manifest line stops the run before any work: exit 1, naming the file and line.
    std::fs::write(
        &manifest,
        "{\"path\": \"a.wav\"}\n{\"path\": \"b.wav\", \"beam\": 2}\n",
    )
    .unwrap();
    let bad = batch()
        .arg(&manifest)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    let err = stderr(&bad);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(
        err.contains("list.jsonl, line 2") && err.contains("beam"),
        "{err}"
    );
}

#[test]
fn shards_add_up_to_the_whole_run() {
    let d = tempfile::tempdir().unwrap();
    let archive = d.path().join("archive");
    if make_archive(&archive).is_none() {
        return;
    }
    let whole = d.path().join("whole");
    let shared = d.path().join("shards");
    // The whole run transcribes 4 files at once (their decoding steps merged), the shards one
    // at a time: with int8 (the default) the outputs are the same bytes.
    let r = batch()
        .arg(&archive)
        .arg("--output")
        .arg(&whole)
        .args(["--jobs", "4"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let mut counts = Vec::new();
    for i in 0..3 {
        let sum = d.path().join(format!("s{i}.json"));
        let r = batch()
            .arg(&archive)
            .arg("--output")
            .arg(&shared)
            .args([
                "--jobs",
                "1",
                "--shard",
                &format!("{i}/3"),
                "--summary-json",
            ])
            .arg(&sum)
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
        counts.push(summary(&sum)["done"].as_u64().unwrap());
    }
    assert_eq!(counts.iter().sum::<u64>(), 5, "{counts:?}");
    assert_eq!(
        tree(&shared),
        tree(&whole),
        "three shards, one file at a time, write what one run of 4 at a time writes"
    );
    let bad = batch()
        .arg(&archive)
        .arg("--output")
        .arg(&shared)
        .args(["--shard", "3/3"])
        .output()
        .unwrap();
    assert!(
        !bad.status.success() && stderr(&bad).contains("3/3"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn runs_killed_at_random_points_finish_with_the_uninterrupted_output() {
    let d = tempfile::tempdir().unwrap();
    let archive = d.path().join("archive");
    if make_archive(&archive).is_none() {
        return;
    }
    let reference = d.path().join("reference");
    let r = batch()
        .arg(&archive)
        .arg("--output")
        .arg(&reference)
        .args(["--format", "txt,vtt,json"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let expected = tree(&reference);
    assert_eq!(
        expected.len(),
        5 * 4 + 5,
        "3 formats + record per input, one index entry each"
    );

    for seed in [1u64, 2, 3, 4] {
        let out = d.path().join(format!("killed-{seed}"));
        let mut rng = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut kills = 0;
        for _ in 0..4 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let after = Duration::from_millis(150 + (rng >> 33) % 2500);
            let mut child = batch()
                .arg(&archive)
                .arg("--output")
                .arg(&out)
                .args(["--format", "txt,vtt,json"])
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(after);
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL: no cleanup runs
                kills += 1;
            }
            child.wait().unwrap();
        }
        let finish = batch()
            .arg(&archive)
            .arg("--output")
            .arg(&out)
            .args(["--format", "txt,vtt,json"])
            .output()
            .unwrap();
        assert_eq!(finish.status.code(), Some(0), "{}", stderr(&finish));
        eprintln!("seed {seed}: {kills} kills");
        let got = tree(&out);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "seed {seed}: same files, no temporaries"
        );
        let differing: Vec<String> = expected
            .iter()
            .filter(|(name, bytes)| &got[*name] != *bytes)
            .map(|(name, bytes)| {
                format!(
                    "{name}:\n--- uninterrupted\n{}\n--- killed and rerun\n{}",
                    String::from_utf8_lossy(bytes),
                    String::from_utf8_lossy(&got[name])
                )
            })
            .collect();
        assert!(
            differing.is_empty(),
            "seed {seed}: {}",
            differing.join("\n")
        );
    }
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    whisper_batch::key::sha256_hex(bytes)
}
