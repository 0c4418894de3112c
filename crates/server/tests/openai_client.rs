//! OpenAI's official Python client (`openai` from PyPI, pinned) transcribes a clip through the
//! server: json, verbose_json, srt, streaming, and a 400 raised as `BadRequestError`. The client
//! is installed into a virtual environment under the target directory on first use; without
//! pip or PyPI the test skips loudly.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const OPENAI: &str = "openai==3.57.0";

/// The venv's interpreter, installing the client on first use; `Err` says why it cannot be had.
fn client_python() -> Result<PathBuf, String> {
    let venv =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("venv-{}", OPENAI.replace("==", "-")));
    whisper_fetch::python_venv(&venv, &[&[OPENAI]]).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_client_transcribes_through_the_server() {
    let Some(audio) = clip("jfk.wav") else { return };
    let python = match tokio::task::spawn_blocking(client_python).await.unwrap() {
        Ok(p) => p,
        Err(why) => {
            support::skip(format!(
                "the openai Python client cannot be installed: {why}"
            ));
            return;
        }
    };
    let server = TestServer::start(config()).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
    let base_url = server.url("/v1");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&base_url)
        .arg(&audio)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{v:#}");
    let text = v["json"].as_str().unwrap();
    assert!(
        text.to_lowercase().contains("ask not what your country"),
        "{text}"
    );
    assert_eq!(v["verbose"]["language"], "english");
    assert!(!v["verbose"]["segments"].as_array().unwrap().is_empty());
    assert!(v["srt"]
        .as_str()
        .unwrap()
        .starts_with("1\n00:00:00,000 --> "));
    let stream = v["stream"].as_array().unwrap();
    let (done, deltas) = stream.split_last().unwrap();
    assert_eq!(done[0], "transcript.text.done");
    assert!(deltas.iter().all(|d| d[0] == "transcript.text.delta"));
    let joined: String = deltas.iter().map(|d| d[1].as_str().unwrap()).collect();
    assert_eq!(joined.trim_end(), done[1].as_str().unwrap());
    assert_eq!(done[1].as_str().unwrap(), text);
    assert_eq!(v["bad_request"]["status"], 400, "{v}");
    assert!(v["bad_request"]["message"]
        .as_str()
        .unwrap()
        .contains("not audio"));
}
