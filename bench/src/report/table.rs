//! The table on stdout: each figure, its target, same-run baseline and ratio, its verdict
//! and the previous run of the same mode.

use super::{fmt, Report, ROWS};
use crate::history::Previous;

impl Report {
    /// The table on stdout; `prev`: the figures of the previous run of the same mode.
    pub fn table(&self, prev: &Previous) -> String {
        let mut lines = vec![[
            "figure".to_string(),
            "measured".into(),
            "target".into(),
            "baseline".into(),
            "ratio".into(),
            "".into(),
            "previous run".into(),
            "change".into(),
        ]];
        for r in ROWS {
            let base = r.baseline.and_then(|b| self.get(b));
            let verdict = self.verdict_word(r);
            lines.push([
                r.key.to_string(),
                self.get(r.key).map_or("-".into(), |v| fmt(v, r.unit)),
                self.target_text(r),
                base.map_or("-".into(), |b| fmt(b, r.unit)),
                self.ratio(r).map_or("-".into(), |x| format!("{x:.2}")),
                verdict.into(),
                prev.get(r.key).map_or("-".into(), |p| fmt(p.value, r.unit)),
                self.change_text(r, prev),
            ]);
        }
        let widths: Vec<usize> = (0..8)
            .map(|i| {
                lines
                    .iter()
                    .map(|l| l[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (n, l) in lines.iter().enumerate() {
            let cells: Vec<String> = l
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let pad = widths[i] - c.chars().count();
                    // Names left-aligned, numbers right-aligned.
                    if i == 0 || i == 2 || i == 5 || i == 7 {
                        format!("{c}{}", " ".repeat(pad))
                    } else {
                        format!("{}{c}", " ".repeat(pad))
                    }
                })
                .collect();
            out += cells.join("  ").trim_end();
            out.push('\n');
            if n == 0 {
                out += &"-".repeat(widths.iter().sum::<usize>() + 14);
                out.push('\n');
            }
        }
        out
    }
}
