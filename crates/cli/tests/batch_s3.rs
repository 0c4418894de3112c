//! `xdna-whisper batch` against S3: a local moto server (`moto[server]` from PyPI, pinned,
//! installed into a virtual environment under the target directory on first use) holds the
//! archive; inputs are listed from an s3:// prefix, outputs written to another, and a rerun
//! skips them all. Without python3, pip or PyPI the test skips loudly.

mod batch_common;
#[path = "../../model/tests/support/mod.rs"]
mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use batch_common::*;

const MOTO: &str = "moto[server]==5.2.5";

fn moto_python() -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("venv-moto-5.2.5");
    whisper_fetch::python_venv(&venv, &[&[MOTO]]).map_err(|e| e.to_string())
}

/// The moto server on a free loopback port, killed on drop.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto(python: &Path) -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(python.with_file_name("moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "moto_server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// Runs boto3 (installed with moto) against the server: `script` gets `s3` and `sys.argv`.
fn boto(python: &Path, url: &str, script: &str, args: &[&str]) -> String {
    let code = format!(
        "import sys, boto3\ns3 = boto3.client('s3', endpoint_url='{url}', region_name='us-east-1', \
         aws_access_key_id='test', aws_secret_access_key='test')\n{script}"
    );
    let out = Command::new(python)
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn an_archive_on_s3_is_transcribed_to_s3_and_a_rerun_skips_it() {
    let d = tempfile::tempdir().unwrap();
    let archive = d.path().join("archive");
    let Some(ids) = make_archive(&archive) else {
        return;
    };
    let python = match moto_python() {
        Ok(p) => p,
        Err(why) => {
            support::skip(format!("moto cannot be installed: {why}"));
            return;
        }
    };
    let moto = start_moto(&python);
    boto(&python, &moto.url, "s3.create_bucket(Bucket='radio')", &[]);
    for id in &ids {
        let file = archive.join(id);
        boto(
            &python,
            &moto.url,
            "s3.upload_file(sys.argv[1], 'radio', sys.argv[2])",
            &[file.to_str().unwrap(), &format!("archive/{id}")],
        );
    }
    let run = |sum: &Path| {
        batch()
            .args([
                "s3://radio/archive/",
                "--output",
                "s3://radio/out",
                "--format",
                "txt,srt",
            ])
            .args([
                "--s3-endpoint",
                &moto.url,
                "--s3-allow-http",
                "--summary-json",
            ])
            .arg(sum)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap()
    };
    let sum = d.path().join("summary.json");
    let first = run(&sum);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(summary(&sum)["done"], 5, "{}", stderr(&first));

    // What landed in the bucket equals what a local run of the same archive writes.
    let local = d.path().join("local");
    let r = batch()
        .arg(&archive)
        .arg("--output")
        .arg(&local)
        .args(["--format", "txt,srt"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let downloaded = d.path().join("downloaded");
    boto(
        &python,
        &moto.url,
        "import os\nfor o in s3.list_objects_v2(Bucket='radio', Prefix='out/')['Contents']:\n    \
         p = os.path.join(sys.argv[1], o['Key'][4:]); os.makedirs(os.path.dirname(p), exist_ok=True)\n    \
         s3.download_file('radio', o['Key'], p)",
        &[downloaded.to_str().unwrap()],
    );
    let (got, want) = (tree(&downloaded), tree(&local));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &want {
        if name.ends_with(".txt") || name.ends_with(".srt") {
            assert_eq!(&got[name], bytes, "{name}");
        }
    }

    let again = run(&sum);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let s = summary(&sum);
    assert_eq!(
        (s["done"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(5)),
        "{s}"
    );

    // An unreachable bucket is an error of the run (exit 1), not of each file.
    let lost = batch()
        .args(["s3://radio/archive/", "--output", "s3://no-such-bucket/out"])
        .args(["--s3-endpoint", &moto.url, "--s3-allow-http"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert_eq!(lost.status.code(), Some(1), "{}", stderr(&lost));
    assert!(
        stderr(&lost).contains("no-such-bucket"),
        "{}",
        stderr(&lost)
    );
}
