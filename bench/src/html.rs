//! `target/bench/report.html`: one self-contained page (inline CSS and SVG; no script, nothing
//! fetched) drawing each figure beside its same-run baseline and its target, every repeated
//! sample as a point with the median as the bar, the change since the previous run of the same
//! mode, and a small history per headline figure.

use std::fmt::Write as _;

use serde_json::Value;

use crate::history::{self, Entry, Previous};
use crate::report::{change_text, samples, Report, View};
use crate::scenarios::median;

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;
vertical-align:middle}td.n{text-align:right;white-space:nowrap}tr.miss{background:#fdecea}
tr.fail{background:#f9c6c0}.miss b,.fail b{color:#b71c1c}.worse{color:#e65100;font-weight:bold}
.errors{background:#f9c6c0;padding:8px}.hist{display:flex;flex-wrap:wrap;gap:12px}
.hist div{border:1px solid #ddd;padding:4px}small{color:#666}code{font-size:13px}";
/// Chart sizes: a row's bars, a history sparkline.
const W: f64 = 360.0;
const SW: f64 = 200.0;
const SH: f64 = 50.0;
/// Runs a sparkline shows at most.
const HISTORY_RUNS: usize = 30;

pub fn render(json: &Value, prev: &Previous, hist: &[Entry]) -> String {
    let r = Report::from_json(json);
    let run = &json["run"];
    let mode = run["mode"].as_str().unwrap_or("?");
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>waitroom bench</title>\
         <style>{CSS}</style></head><body><h1>waitroom bench: {} run {}</h1><p><small>{} \
         connections, {} cores, {} s in all, machine {}% busy before; bars: measured (green met, \
         red missed, blue no target; dots are repeated samples, the bar their median), grey \
         the same-run baseline, dashed lines the targets.</small></p>",
        esc(mode),
        esc(run["run_id"].as_str().unwrap_or("")),
        run["connections"],
        run["cores"],
        run["elapsed_secs"],
        run["cpu_busy_before_pct"],
    );
    let errors = json["errors"].as_array().cloned().unwrap_or_default();
    if !errors.is_empty() {
        h += "<div class=\"errors\"><b>Errors</b><ul>";
        for e in errors {
            let _ = write!(h, "<li>{}</li>", esc(e.as_str().unwrap_or("")));
        }
        h += "</ul></div>";
    }
    h += "<table><tr><th>figure</th><th>measured</th><th>target</th><th>same-run baseline</th>\
          <th>ratio</th><th></th><th>previous run</th><th></th></tr>";
    let views = r.views();
    for v in views.iter().filter(|v| v.value.is_some()) {
        row(&mut h, json, v, prev);
    }
    h += "</table>";
    other_samples(&mut h, json, &views);
    h += "<h2>History</h2><p><small>the last runs of this mode, oldest left; dashed: the target\
          </small></p><div class=\"hist\">";
    for v in views.iter().filter(|v| v.has_target()) {
        let s = history::series(hist, mode, v.key);
        if !s.is_empty() {
            h += &sparkline(v, &s[s.len().saturating_sub(HISTORY_RUNS)..]);
        }
    }
    h += "</div><h2>Notes</h2><ul>";
    for n in r.notes() {
        let _ = write!(h, "<li>{}</li>", esc(n));
    }
    h += "</ul></body></html>\n";
    h
}

fn row(h: &mut String, json: &Value, v: &View, prev: &Previous) {
    let value = v.value.unwrap_or(f64::NAN);
    let mut s = samples(json, v.key);
    let base_s = v.baseline_key.map(|b| samples(json, b)).unwrap_or_default();
    let class = match v.verdict {
        "miss" => " class=\"miss\"",
        "FAIL" => " class=\"fail\"",
        _ => "",
    };
    let (p, change) = match prev.get(v.key) {
        Some(p) => (v.fmt(p.value), change_text(p.value, value, v.dir)),
        None => ("-".into(), String::new()),
    };
    let change = if change.ends_with("WORSE") {
        format!("<span class=\"worse\">{}</span>", esc(&change))
    } else {
        esc(&change)
    };
    let spread = if s.len() > 1 {
        format!("<br><small>{} samples</small>", s.len())
    } else {
        String::new()
    };
    let _ = write!(
        h,
        "<tr{class}><td><code>{}</code></td><td class=\"n\">{}{spread}</td><td>{}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{}</td><td><b>{}</b></td><td class=\"n\">{}\
         </td><td>{change}</td><td>{}</td></tr>",
        esc(v.key),
        esc(&v.fmt(value)),
        esc(if v.has_target() { &v.target_text } else { "" }),
        v.baseline.map_or(String::new(), |b| esc(&v.fmt(b))),
        v.ratio.map_or(String::new(), |x| format!("{x:.2}")),
        v.verdict,
        esc(&p),
        bars(v, value, &mut s, &base_s),
    );
}

/// The measured bar (the median when there are samples, each sample a dot), the baseline bar
/// below it and the targets as dashed lines, on one scale per row.
fn bars(v: &View, value: f64, s: &mut [f64], base_s: &[f64]) -> String {
    let bar = if s.is_empty() { value } else { median(s) };
    let all = s
        .iter()
        .chain(base_s)
        .copied()
        .chain([bar, v.baseline.unwrap_or(0.0)])
        .chain(v.targets.iter().map(|t| t.0));
    let max = all
        .map(f64::abs)
        .filter(|x| x.is_finite())
        .fold(0.0, f64::max)
        * 1.1;
    let mut g = String::new();
    if max > 0.0 {
        let x = |val: f64| (val.abs() / max * W).clamp(0.0, W);
        let color = match v.verdict {
            "ok" => "#2e7d32",
            "miss" | "FAIL" => "#c62828",
            _ => "#1565c0",
        };
        let _ = write!(
            g,
            "<rect x=\"0\" y=\"3\" width=\"{:.1}\" height=\"11\" fill=\"{color}\"/>",
            x(bar)
        );
        if let Some(b) = v.baseline {
            let _ = write!(
                g,
                "<rect x=\"0\" y=\"18\" width=\"{:.1}\" height=\"7\" fill=\"#9e9e9e\"/>",
                x(b)
            );
        }
        for (val, y) in s
            .iter()
            .map(|v| (v, 8.5))
            .chain(base_s.iter().map(|v| (v, 21.5)))
        {
            let _ = write!(
                g,
                "<circle cx=\"{:.1}\" cy=\"{y}\" r=\"2.5\" fill=\"#fff\" stroke=\"#000\"/>",
                x(*val)
            );
        }
        for (t, label) in &v.targets {
            let _ = write!(
                g,
                "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"0\" y2=\"28\" stroke=\"#000\" \
                 stroke-dasharray=\"3,2\" stroke-width=\"1.5\"><title>target {1}</title></line>",
                x(*t),
                esc(label)
            );
        }
    }
    format!("<svg width=\"{W}\" height=\"28\" viewBox=\"0 0 {W} 28\">{g}</svg>")
}

/// `*_samples` arrays of no row (such as a ratio's per-pair samples): dots and their median.
fn other_samples(h: &mut String, json: &Value, views: &[View]) {
    let Some(m) = json.as_object() else { return };
    let mut any = false;
    for (k, a) in m {
        let Some(base) = k.strip_suffix("_samples") else {
            continue;
        };
        if views.iter().any(|v| v.key == base) || a.as_array().is_none() {
            continue;
        }
        let mut s = samples(json, base);
        if s.is_empty() {
            continue;
        }
        if !any {
            *h += "<h2>Other repeated samples</h2><table>";
            any = true;
        }
        let med = median(&mut s);
        let max = s.iter().copied().map(f64::abs).fold(0.0, f64::max) * 1.1;
        let mut g = String::new();
        if max > 0.0 {
            let _ = write!(
                g,
                "<rect x=\"0\" y=\"3\" width=\"{:.1}\" height=\"11\" fill=\"#1565c0\"/>",
                med.abs() / max * W
            );
            for x in &s {
                let _ = write!(
                    g,
                    "<circle cx=\"{:.1}\" cy=\"8.5\" r=\"2.5\" fill=\"#fff\" stroke=\"#000\"/>",
                    x.abs() / max * W
                );
            }
        }
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td class=\"n\">median {med:.3} of {}</td><td>\
             <svg width=\"{W}\" height=\"18\" viewBox=\"0 0 {W} 18\">{g}</svg></td></tr>",
            esc(base),
            s.len()
        );
    }
    if any {
        *h += "</table>";
    }
}

/// One figure over the last runs; its targets as dashed lines when they fit the range.
fn sparkline(v: &View, s: &[f64]) -> String {
    let lo = s.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let targets: Vec<f64> = v
        .targets
        .iter()
        .map(|t| t.0)
        .filter(|t| *t >= lo / 2.0 && *t <= hi * 2.0)
        .collect();
    let lo = targets.iter().copied().fold(lo, f64::min);
    let hi = targets.iter().copied().fold(hi, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let y = |val: f64| SH - 4.0 - (val - lo) / span * (SH - 8.0);
    let x = |i: usize| 4.0 + i as f64 * (SW - 8.0) / (s.len().max(2) - 1) as f64;
    let pts: Vec<String> = s
        .iter()
        .enumerate()
        .map(|(i, val)| format!("{:.1},{:.1}", x(i), y(*val)))
        .collect();
    let mut g = format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"1.5\"/>",
        pts.join(" ")
    );
    for t in targets {
        let _ = write!(
            g,
            "<line x1=\"0\" x2=\"{SW}\" y1=\"{0:.1}\" y2=\"{0:.1}\" stroke=\"#000\" \
             stroke-dasharray=\"3,2\"/>",
            y(t)
        );
    }
    let last = *s.last().unwrap_or(&0.0);
    let _ = write!(
        g,
        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>",
        x(s.len() - 1),
        y(last),
        if v.verdict == "miss" || v.verdict == "FAIL" {
            "#c62828"
        } else {
            "#2e7d32"
        }
    );
    format!(
        "<div><code>{}</code><br><svg width=\"{SW}\" height=\"{SH}\" viewBox=\"0 0 {SW} {SH}\">\
         {g}</svg><br><small>{} runs, last {}</small></div>",
        esc(v.key),
        s.len(),
        esc(&v.fmt(last))
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_page_fetches_nothing() {
        let latest = json!({
            "enqueue_rps": 30000.0, "enqueue_rps_samples": [29000.0, 30000.0, 31000.0],
            "baseline_http_rps": 100000.0, "baseline_http_rps_samples": [90000.0, 110000.0],
            "enqueue_ratio": 0.3, "enqueue_ratio_samples": [0.3, 0.29, 0.31],
            "redis_bytes_per_queued": 130.0,
            "oversold": 0, "notes": ["a <note> & more"], "errors": [],
            "run": { "mode": "quick", "run_id": "abc" }
        });
        let r = Report::from_json(&latest);
        let hist = vec![
            Entry::now("quick", r.figures()),
            Entry::now("quick", r.figures()),
        ];
        let page = render(&latest, &Previous::of(&hist, "quick"), &hist);
        for bad in [
            "http:", "https:", "src=", "href=", "url(", "@import", "<script", "<link",
        ] {
            assert!(!page.contains(bad), "the page holds {bad:?}");
        }
        assert!(page.contains("a &lt;note&gt; &amp; more"));
        // Samples as dots on their rows.
        assert!(page.contains("enqueue_ratio"));
        assert!(page.matches("<circle").count() >= 8);
        assert!(page.contains("class=\"miss\""), "130 B misses 120 B");
    }
}
