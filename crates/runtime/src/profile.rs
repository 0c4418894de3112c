//! Per-call timing: (family, op label) → calls, total time, flops.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct Profiler {
    /// family → op label → stats (lookups by `&str`, so a known label allocates nothing).
    stats: Mutex<BTreeMap<&'static str, BTreeMap<String, Stat>>>,
}

#[derive(Clone, Copy, Default)]
struct Stat {
    calls: u64,
    total: Duration,
    flops: f64,
    npu_estimate_us: f64,
    without_estimate: u64,
}

impl Profiler {
    /// Records one call from `start` until now, with the emulator's estimate of its NPU time
    /// (µs; 0 where no kernel serves it).
    pub(crate) fn record_estimate(
        &self,
        family: &'static str,
        op: &str,
        start: Instant,
        flops: f64,
        npu_estimate_us: f64,
    ) {
        let elapsed = start.elapsed();
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let fam = stats.entry(family).or_default();
        let stat = match fam.get_mut(op) {
            Some(s) => s,
            None => fam.entry(op.to_string()).or_default(),
        };
        stat.calls += 1;
        stat.total += elapsed;
        stat.flops += flops;
        stat.npu_estimate_us += npu_estimate_us;
        stat.without_estimate += u64::from(npu_estimate_us == 0.0);
    }

    pub(crate) fn report(&self) -> ProfileReport {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        ProfileReport {
            entries: stats
                .iter()
                .flat_map(|(family, ops)| {
                    ops.iter().map(move |(op, s)| ProfileEntry {
                        family,
                        op: op.clone(),
                        calls: s.calls,
                        total: s.total,
                        flops: s.flops,
                        npu_estimate_us: s.npu_estimate_us,
                        calls_without_estimate: s.without_estimate,
                    })
                })
                .collect(),
        }
    }

    pub(crate) fn reset(&self) {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// One (family, op label) line of a [`ProfileReport`].
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileEntry {
    /// Kernel family: `matmul`, `ffn`, `layernorm`, `attention`, `lm_head`.
    pub family: &'static str,
    /// The label the caller passed (`enc.3.fc1`, …).
    pub op: String,
    pub calls: u64,
    pub total: Duration,
    /// Floating-point operations summed over all calls (a multiply-add counts 2).
    pub flops: f64,
    /// The emulator backend's estimate of the NPU time of these calls, µs (an event-level
    /// model of the design, not a measurement); 0 on the other backends.
    pub npu_estimate_us: f64,
    /// Calls no kernel with an NPU estimate served (on the CPU backend: no entry, or a
    /// manifest without emulated estimates).
    pub calls_without_estimate: u64,
}

impl ProfileEntry {
    pub fn mean(&self) -> Duration {
        if self.calls == 0 {
            Duration::ZERO
        } else {
            self.total / self.calls as u32
        }
    }

    pub fn gflops(&self) -> f64 {
        let s = self.total.as_secs_f64();
        if s > 0.0 {
            self.flops / s / 1e9
        } else {
            0.0
        }
    }
}

/// Timings collected while `RuntimeConfig::profile` is on. `Display` prints a table per family
/// and per op label: calls, total ms, mean ms, GFLOP/s, and under the emulator backend the
/// estimated NPU ms (labelled as an estimate).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileReport {
    /// Sorted by family, then op label.
    pub entries: Vec<ProfileEntry>,
}

impl ProfileReport {
    /// Totals per family, in family order.
    pub fn families(&self) -> Vec<ProfileEntry> {
        let mut out: Vec<ProfileEntry> = Vec::new();
        for e in &self.entries {
            match out.last_mut() {
                Some(last) if last.family == e.family => {
                    last.calls += e.calls;
                    last.total += e.total;
                    last.flops += e.flops;
                    last.npu_estimate_us += e.npu_estimate_us;
                    last.calls_without_estimate += e.calls_without_estimate;
                }
                _ => out.push(ProfileEntry {
                    family: e.family,
                    op: String::from("(all)"),
                    ..e.clone()
                }),
            }
        }
        out
    }

    pub fn total(&self) -> Duration {
        self.entries.iter().map(|e| e.total).sum()
    }
}

impl fmt::Display for ProfileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entries.is_empty() {
            return writeln!(
                f,
                "no kernel calls recorded (is RuntimeConfig::profile on?)"
            );
        }
        let width = self
            .entries
            .iter()
            .map(|e| e.op.len())
            .max()
            .unwrap_or(0)
            .max(12);
        let estimates = self.entries.iter().any(|e| e.npu_estimate_us > 0.0);
        let line = |f: &mut fmt::Formatter<'_>, name: &str, e: &ProfileEntry| {
            write!(
                f,
                "{name:<width$}  {:>8}  {:>11.3}  {:>10.4}  {:>9.1}",
                e.calls,
                e.total.as_secs_f64() * 1e3,
                e.mean().as_secs_f64() * 1e3,
                e.gflops(),
            )?;
            if estimates {
                write!(f, "  {:>14.3}", e.npu_estimate_us / 1e3)?;
            }
            writeln!(f)
        };
        write!(
            f,
            "{:<width$}  {:>8}  {:>11}  {:>10}  {:>9}",
            "family / op", "calls", "total ms", "mean ms", "GFLOP/s"
        )?;
        if estimates {
            write!(f, "  {:>14}", "NPU est. ms*")?;
        }
        writeln!(f)?;
        for fam in self.families() {
            line(f, fam.family, &fam)?;
            for e in self.entries.iter().filter(|e| e.family == fam.family) {
                line(f, &format!("  {}", e.op), e)?;
            }
        }
        writeln!(f, "total {:.3} ms", self.total().as_secs_f64() * 1e3)?;
        if estimates {
            let est: f64 = self.entries.iter().map(|e| e.npu_estimate_us).sum();
            writeln!(
                f,
                "* estimated NPU time {:.3} ms: the emulator's event-level model of the designs, not a measurement",
                est / 1e3
            )?;
        }
        Ok(())
    }
}
