//! `cargo xtask bench-server`: load on `xdna-whisper serve` from a bounded client of our own.
//! Builds and starts the server as a child process on a loopback port, then runs two phases of
//! N concurrent clients looping over the English clips of `../shared/data/speech` for a fixed
//! time: one at the server's bound (workers + queue clients: every request must succeed) and one
//! above it (the surplus must get clean 429s, nothing else). Reports requests/s, audio seconds
//! per second, p50/p99 latency, errors, 429/503 counts and the server's peak RSS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use std::io::BufRead;
use whisper_eval::read_manifest;

use crate::workspace_root;

#[derive(clap::Args)]
pub struct Args {
    /// Model the server loads.
    #[arg(long, default_value = "base")]
    pub model: String,
    /// Beam size of the server (its default is 5).
    #[arg(long, default_value_t = 5)]
    pub beam_size: usize,
    /// Server workers (transcriptions at once).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Server queue (requests waiting for a worker).
    #[arg(long, default_value_t = 2)]
    pub queue: usize,
    /// Seconds each phase sends requests.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Clients of the overload phase (default: 3 × (workers + queue)).
    #[arg(long)]
    pub overload_clients: Option<usize>,
}

/// One request's outcome.
struct Outcome {
    status: u16,
    latency: Duration,
    audio_seconds: f64,
}

struct Clip {
    name: String,
    bytes: Arc<Vec<u8>>,
    seconds: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let root = workspace_root();
    let speech = root.join("../shared/data/speech");
    let clips: Vec<Clip> = read_manifest(&speech.join("manifest.tsv"))
        .with_context(|| format!("the English clips of {} are needed", speech.display()))?
        .into_iter()
        .filter(|c| c.language.as_deref() == Some("en"))
        .map(|c| {
            Ok(Clip {
                name: c.file.clone(),
                bytes: Arc::new(
                    std::fs::read(&c.path)
                        .with_context(|| format!("reading {}", c.path.display()))?,
                ),
                seconds: c.duration_s,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    if clips.is_empty() {
        bail!("no English clips in {}", speech.display());
    }
    let binary = build_server(&root)?;
    let bound = args.workers + args.queue;
    let overload = args.overload_clients.unwrap_or(3 * bound);

    let mut server = start_server(&binary, &args)?;
    let result = (|| -> anyhow::Result<()> {
        let cpu = cpu_model();
        println!(
            "server: model {}, beam {}, {} workers, queue {}; {} English clips ({:.1} s of audio); {} s per phase; CPU {cpu}, {} cores",
            args.model,
            args.beam_size,
            args.workers,
            args.queue,
            clips.len(),
            clips.iter().map(|c| c.seconds).sum::<f64>(),
            args.seconds,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let clips = Arc::new(clips);
        for (phase, clients) in [("at the bound", bound), ("above the bound", overload)] {
            let outcomes = rt.block_on(load(
                &server.url,
                clients,
                Duration::from_secs(args.seconds),
                clips.clone(),
            ))?;
            report(phase, clients, &outcomes, args.seconds as f64);
        }
        let rss = peak_rss_mib(server.child.id()).unwrap_or(f64::NAN);
        println!("server peak RSS: {rss:.0} MiB");
        Ok(())
    })();
    let stop = server.stop();
    result.and(stop)
}

fn build_server(root: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "-p", "xdna-whisper"])
        .status()
        .context("building xdna-whisper")?;
    if !status.success() {
        bail!("cargo build -p xdna-whisper failed");
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("release/xdna-whisper"))
}

struct ServerProcess {
    child: Child,
    url: String,
}

fn start_server(binary: &Path, args: &Args) -> anyhow::Result<ServerProcess> {
    let log_path = binary.with_file_name("bench-server.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    println!("server log: {}", log_path.display());
    let mut child = Command::new(binary)
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--model",
            &args.model,
        ])
        .args(["--beam-size", &args.beam_size.to_string()])
        .args([
            "--workers",
            &args.workers.to_string(),
            "--queue",
            &args.queue.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let Some(url) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        bail!("the server did not start (it printed {line:?})");
    };
    Ok(ServerProcess {
        url: url.to_string(),
        child,
    })
}

impl ServerProcess {
    /// SIGTERM (graceful shutdown), then a kill if it has not exited within 40 s.
    fn stop(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        while start.elapsed() < Duration::from_secs(40) {
            if let Some(status) = self.child.try_wait()? {
                println!(
                    "server stopped on SIGTERM in {:.2} s ({status})",
                    start.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        bail!("the server did not stop within 40 s of SIGTERM; killed it")
    }
}

/// `clients` tasks send requests back to back over the clips until `duration` has passed, then
/// wait for their last answer.
async fn load(
    url: &str,
    clients: usize,
    duration: Duration,
    clips: Arc<Vec<Clip>>,
) -> anyhow::Result<Vec<Outcome>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, next, clips) = (client.clone(), next.clone(), clips.clone());
        let endpoint = format!("{url}/v1/audio/transcriptions");
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            while Instant::now() < deadline {
                let clip = &clips[next.fetch_add(1, Ordering::Relaxed) % clips.len()];
                let form = reqwest::multipart::Form::new()
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(clip.bytes.to_vec())
                            .file_name(clip.name.clone()),
                    )
                    .text("model", "whisper-1")
                    .text("language", "en");
                let start = Instant::now();
                let status = match client.post(&endpoint).multipart(form).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let _ = r.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                outcomes.push(Outcome {
                    status,
                    latency: start.elapsed(),
                    audio_seconds: clip.seconds,
                });
                if status == 429 || status == 503 {
                    // Refused at once: back off a little, as a client honouring Retry-After would.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            outcomes
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    Ok(all)
}

fn report(phase: &str, clients: usize, outcomes: &[Outcome], seconds: f64) {
    let ok: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == 200).collect();
    let count = |s: u16| outcomes.iter().filter(|o| o.status == s).count();
    let (busy, unavailable) = (count(429), count(503));
    let errors = outcomes.len() - ok.len() - busy - unavailable;
    let mut error_statuses: Vec<u16> = outcomes
        .iter()
        .map(|o| o.status)
        .filter(|s| ![200, 429, 503].contains(s))
        .collect();
    error_statuses.sort_unstable();
    error_statuses.dedup();
    let mut latencies: Vec<f64> = ok.iter().map(|o| o.latency.as_secs_f64()).collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if latencies.is_empty() {
            f64::NAN
        } else {
            latencies[((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1]
        }
    };
    let refused: Vec<f64> = outcomes
        .iter()
        .filter(|o| o.status == 429)
        .map(|o| o.latency.as_secs_f64() * 1e3)
        .collect();
    let refused_max = refused.iter().copied().fold(0.0, f64::max);
    let audio: f64 = ok.iter().map(|o| o.audio_seconds).sum();
    println!(
        "{phase}: {clients} clients, {} requests: {} ok ({:.2} req/s, {:.1} s of audio per s), p50 {:.2} s, p99 {:.2} s; {} errors {:?} (0 = no HTTP answer); {} × 429 (slowest answer {:.0} ms), {} × 503",
        outcomes.len(),
        ok.len(),
        ok.len() as f64 / seconds,
        audio / seconds,
        pct(0.5),
        pct(0.99),
        errors,
        error_statuses,
        busy,
        refused_max,
        unavailable
    );
}

/// VmHWM of a process, in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
