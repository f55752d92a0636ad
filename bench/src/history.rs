//! The history of runs: one JSON line per run (`history.jsonl` next to latest.json) with its
//! time, git commit, mode and figures, so a figure that got slower shows in the next run's
//! table and page. Reading or writing it never fails a run: a bad line is skipped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::report::{Dir, Report};

/// Writes the run's report (`out`, latest.json) and beside it report.html, and appends the run
/// to history.jsonl there; notes each figure worse than in the previous run of `mode`. Only
/// the JSON report can fail the run. Returns the previous figures and the page's path.
pub fn publish(r: &mut Report, meta: Value, out: &Path, mode: &str) -> Result<(Previous, PathBuf)> {
    let hist_path = out.with_file_name("history.jsonl");
    let mut hist = load(&hist_path);
    let prev = Previous::of(&hist, mode);
    for n in r.regressions(&prev) {
        r.note(n);
    }
    let json = r.to_json(meta);
    std::fs::write(out, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("write {}", out.display()))?;
    let entry = Entry::now(mode, r.figures());
    if let Err(e) = append(&hist_path, &entry) {
        eprintln!("[bench] could not append to {}: {e}", hist_path.display());
    }
    hist.push(entry);
    let page = out.with_file_name("report.html");
    if let Err(e) = std::fs::write(&page, crate::html::render(&json, &prev, &hist)) {
        eprintln!("[bench] could not write {}: {e}", page.display());
    }
    Ok((prev, page))
}

/// A JSON report (latest.json) as the README's markdown table.
pub fn markdown(path: &Path) -> Result<String> {
    let json = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let json: Value =
        serde_json::from_str(&json).with_context(|| format!("parse {}", path.display()))?;
    Ok(Report::from_json(&json).markdown(&json))
}

/// A figure worse than the previous run's by more than this share is flagged.
pub const WORSE_BY: f64 = 0.20;

pub struct Entry {
    /// UTC, `2026-12-01T18:40:00Z`.
    pub ts: String,
    pub commit: Option<String>,
    /// "quick" or "full": only runs of the same mode are compared.
    pub mode: String,
    pub figures: BTreeMap<String, f64>,
}

impl Entry {
    /// This run, now, at the checked-out commit.
    pub fn now(mode: &str, figures: &BTreeMap<String, f64>) -> Self {
        Self {
            ts: utc(SystemTime::now()),
            commit: git_commit(),
            mode: mode.into(),
            figures: figures
                .iter()
                .filter(|(_, v)| v.is_finite())
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }

    fn to_line(&self) -> String {
        json!({ "ts": self.ts, "commit": self.commit, "mode": self.mode, "figures": self.figures })
            .to_string()
    }

    fn parse(line: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(line).ok()?;
        let figures = v["figures"]
            .as_object()?
            .iter()
            .filter_map(|(k, x)| Some((k.clone(), x.as_f64()?)))
            .collect();
        Some(Self {
            ts: v["ts"].as_str()?.into(),
            commit: v["commit"].as_str().map(String::from),
            mode: v["mode"].as_str()?.into(),
            figures,
        })
    }
}

/// Every readable entry, oldest first; none if there is no file yet.
pub fn load(path: &Path) -> Vec<Entry> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().filter_map(Entry::parse).collect())
        .unwrap_or_default()
}

pub fn append(path: &Path, e: &Entry) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{}", e.to_line())
}

/// A figure as the last run of the same mode that measured it had it.
pub struct Prev {
    pub value: f64,
    pub ts: String,
    pub commit: Option<String>,
}

/// The figures of the previous runs of one mode: per figure, the latest run that has it (a
/// run of only some scenarios does not hide the others' last values).
#[derive(Default)]
pub struct Previous(BTreeMap<String, Prev>);

impl Previous {
    pub fn of(entries: &[Entry], mode: &str) -> Self {
        let mut m = BTreeMap::new();
        for e in entries.iter().filter(|e| e.mode == mode) {
            for (k, v) in &e.figures {
                let p = Prev {
                    value: *v,
                    ts: e.ts.clone(),
                    commit: e.commit.clone(),
                };
                m.insert(k.clone(), p);
            }
        }
        Self(m)
    }

    pub fn get(&self, key: &str) -> Option<&Prev> {
        self.0.get(key)
    }
}

/// One figure over the runs of one mode, oldest first.
pub fn series(entries: &[Entry], mode: &str, key: &str) -> Vec<f64> {
    entries
        .iter()
        .filter(|e| e.mode == mode)
        .filter_map(|e| e.figures.get(key).copied())
        .collect()
}

/// How much worse `now` is than `prev` as a share of `prev` (negative: better); None when
/// there is no scale to compare on (`prev` is 0). Lower-is-better figures compare magnitudes
/// (an error of -3% is as bad as +3%).
pub fn worse_by(prev: f64, now: f64, dir: Dir) -> Option<f64> {
    let by = match dir {
        Dir::Higher => (prev - now) / prev.abs(),
        Dir::Lower => (now.abs() - prev.abs()) / prev.abs(),
    };
    by.is_finite().then_some(by)
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// RFC 3339 in UTC without a date library (days to civil date: Howard Hinnant's algorithm).
fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s) = (rem / 3_600, rem % 3_600 / 60, rem % 60);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn worse_follows_the_direction() {
        // A rate that fell by 30% is worse; one that rose is better.
        assert!(worse_by(100.0, 70.0, Dir::Higher).unwrap() > WORSE_BY);
        assert!(worse_by(100.0, 130.0, Dir::Higher).unwrap() < 0.0);
        // A latency that rose by 30% is worse; one that fell is better.
        assert!(worse_by(10.0, 13.0, Dir::Lower).unwrap() > WORSE_BY);
        assert!(worse_by(10.0, 7.0, Dir::Lower).unwrap() < 0.0);
        // Within the threshold: not flagged.
        assert!(worse_by(100.0, 85.0, Dir::Higher).unwrap() < WORSE_BY);
        // Magnitudes for lower-is-better (an error of -3% is as far off as +3%).
        assert!(worse_by(1.0, -3.0, Dir::Lower).unwrap() > WORSE_BY);
        assert_eq!(worse_by(0.0, 5.0, Dir::Lower), None);
    }

    #[test]
    fn previous_is_the_latest_run_of_the_same_mode_per_figure() {
        let e = |mode: &str, ts: &str, figs: &[(&str, f64)]| Entry {
            ts: ts.into(),
            commit: None,
            mode: mode.into(),
            figures: figs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        };
        let lines: Vec<String> = [
            e("quick", "1", &[("a", 1.0), ("b", 1.0)]),
            e("full", "2", &[("a", 2.0)]),
            e("quick", "3", &[("a", 3.0)]),
        ]
        .iter()
        .map(Entry::to_line)
        .collect();
        let entries: Vec<Entry> = lines.iter().filter_map(|l| Entry::parse(l)).collect();
        let p = Previous::of(&entries, "quick");
        assert_eq!(p.get("a").map(|p| p.value), Some(3.0));
        assert_eq!(p.get("b").map(|p| p.ts.as_str()), Some("1"));
        assert_eq!(series(&entries, "quick", "a"), vec![1.0, 3.0]);
        assert!(Entry::parse("not json").is_none());
    }

    #[test]
    fn utc_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_150_000);
        assert_eq!(utc(t), "2026-12-01T18:33:20Z");
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
