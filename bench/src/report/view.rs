//! The rows as the page, the README table and the history read them: the one place that turns
//! a row's target into numbers and a direction (is a higher figure better or worse?).

use super::{fmt, Report, Row, Target, Unit, ROWS};
use crate::history::{self, Previous};
use serde_json::Value;

/// Which way a figure improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Higher,
    Lower,
}

/// One row of the report with everything a page or a table shows of it.
pub struct View {
    pub key: &'static str,
    pub value: Option<f64>,
    pub target_text: String,
    /// Where the targets sit on the row's scale: a figure, or a share of the baseline.
    pub targets: Vec<(f64, String)>,
    pub baseline_key: Option<&'static str>,
    pub baseline: Option<f64>,
    pub ratio: Option<f64>,
    /// "", "ok", "miss" or "FAIL" (a correctness counter).
    pub verdict: &'static str,
    pub dir: Option<Dir>,
    unit: Unit,
}

impl View {
    pub fn fmt(&self, v: f64) -> String {
        fmt(v, self.unit)
    }

    pub fn has_target(&self) -> bool {
        !self.target_text.is_empty() && self.target_text != "-"
    }
}

/// The direction of a row: from its target, else from its unit (rates up, times and sizes down).
fn dir(r: &Row) -> Option<Dir> {
    match r.target {
        Target::AtLeast(_) | Target::AtLeastFigure(_) | Target::Ratio => Some(Dir::Higher),
        Target::Below(_) | Target::AtMost(_) | Target::Within(_) | Target::Zero => Some(Dir::Lower),
        Target::Info => match r.unit {
            Unit::PerSec => Some(Dir::Higher),
            Unit::Ms | Unit::Us | Unit::MiB | Unit::KiB | Unit::Bytes => Some(Dir::Lower),
            Unit::Count | Unit::Pct | Unit::Ratio => None,
        },
    }
}

/// The `<key>_samples` array of a report, if any (repeated runs of one figure).
pub fn samples(json: &Value, key: &str) -> Vec<f64> {
    json.get(format!("{key}_samples"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

impl Report {
    /// A report as latest.json holds it: every top-level number, the notes and the errors.
    pub fn from_json(v: &Value) -> Report {
        let mut r = Report::default();
        let strings = |k: &str| -> Vec<String> {
            v[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        if let Some(m) = v.as_object() {
            for (k, x) in m {
                if let Some(x) = x.as_f64() {
                    r.figures.insert(k.clone(), x);
                }
            }
        }
        r.notes = strings("notes");
        r.errors = strings("errors");
        r
    }

    pub fn figures(&self) -> &std::collections::BTreeMap<String, f64> {
        &self.figures
    }

    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub fn views(&self) -> Vec<View> {
        ROWS.iter().map(|r| self.view(r)).collect()
    }

    fn view(&self, r: &Row) -> View {
        let baseline = r.baseline.and_then(|b| self.get(b));
        let mut targets = Vec::new();
        let t = match r.target {
            Target::AtLeast(t) | Target::Below(t) | Target::AtMost(t) | Target::Within(t) => {
                Some(t)
            }
            Target::AtLeastFigure(k) => self.get(k),
            Target::Zero | Target::Info | Target::Ratio => None,
        };
        if let Some(t) = t {
            targets.push((t, super::fmt_target(t, r.unit)));
        }
        if let (Some(min), Some(b)) = (r.min_ratio, baseline) {
            targets.push((b * min, format!("{:.0}% of baseline", min * 100.0)));
        }
        View {
            key: r.key,
            value: self.get(r.key),
            target_text: self.target_text(r),
            targets,
            baseline_key: r.baseline,
            baseline,
            ratio: self.ratio(r),
            verdict: self.verdict_word(r),
            dir: dir(r),
            unit: r.unit,
        }
    }

    pub(super) fn verdict_word(&self, r: &Row) -> &'static str {
        match (self.verdict(r), r.target) {
            (None, _) => "",
            (Some(true), _) => "ok",
            (Some(false), Target::Zero) => "FAIL",
            (Some(false), _) => "miss",
        }
    }

    /// "+12%" against the previous run, with "WORSE" past the threshold.
    pub(super) fn change_text(&self, r: &Row, prev: &Previous) -> String {
        let (Some(now), Some(p)) = (self.get(r.key), prev.get(r.key)) else {
            return "-".into();
        };
        change_text(p.value, now, dir(r))
    }

    /// A note for each figure worse than in the previous run of the same mode by more than
    /// the threshold.
    pub fn regressions(&self, prev: &Previous) -> Vec<String> {
        ROWS.iter()
            .filter_map(|r| {
                let (now, p, d) = (self.get(r.key)?, prev.get(r.key)?, dir(r)?);
                let by = history::worse_by(p.value, now, d)?;
                (by > history::WORSE_BY).then(|| {
                    format!(
                        "{} got {:.0}% worse than the previous run of this mode ({} at {}{}): {}",
                        r.key,
                        by * 100.0,
                        fmt(p.value, r.unit),
                        p.ts,
                        p.commit
                            .as_deref()
                            .map(|c| format!(", {c}"))
                            .unwrap_or_default(),
                        fmt(now, r.unit)
                    )
                })
            })
            .collect()
    }

    /// latest.json as the README's table: figure | measured | target | same-run baseline |
    /// ratio | verdict, the rows that have a figure.
    pub fn markdown(&self, json: &Value) -> String {
        let mut out = String::from(
            "| figure | measured | target (DESIGN.md) | same-run baseline | ratio | verdict |\n\
             | --- | --- | --- | --- | --- | --- |\n",
        );
        for v in self.views() {
            let Some(x) = v.value else { continue };
            let mut measured = v.fmt(x);
            let s = samples(json, v.key);
            if s.len() > 1 {
                let lo = s.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                measured += &format!(" (median of {}: {}–{})", s.len(), v.fmt(lo), v.fmt(hi));
            }
            let base = match (v.baseline_key, v.baseline) {
                (Some(k), Some(b)) => format!("{k} {}", v.fmt(b)),
                _ => String::new(),
            };
            let verdict = match v.verdict {
                "ok" => "met",
                "miss" => "**missed**",
                "FAIL" => "**FAIL**",
                _ => "",
            };
            let ratio = v.ratio.map_or(String::new(), |r| format!("{r:.2}"));
            let target = if v.has_target() {
                v.target_text.as_str()
            } else {
                ""
            };
            out += &format!(
                "| {} | {measured} | {target} | {base} | {ratio} | {verdict} |\n",
                v.key
            );
        }
        out
    }
}

/// The signed change from `prev` to `now`, flagged when it is worse by more than the threshold.
pub fn change_text(prev: f64, now: f64, d: Option<Dir>) -> String {
    if prev == 0.0 {
        return if now == 0.0 { "=".into() } else { "new".into() };
    }
    let pct = (now - prev) / prev.abs() * 100.0;
    let worse = d
        .and_then(|d| history::worse_by(prev, now, d))
        .is_some_and(|by| by > history::WORSE_BY);
    format!("{pct:+.0}%{}", if worse { " WORSE" } else { "" })
}
