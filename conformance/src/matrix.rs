//! The summary table: rows are case groups, columns are targets.

use std::fmt::Write as _;

use crate::runner::{CaseResult, Verdict};

/// One column: a target's name and its results, in suite order.
pub type Column = (String, Vec<CaseResult>);

pub fn render(columns: &[Column]) -> String {
    let mut groups: Vec<&str> = Vec::new();
    for (_, results) in columns {
        for r in results {
            if !groups.contains(&r.group.as_str()) {
                groups.push(&r.group);
            }
        }
    }
    // Wide enough for a name or a cell with skips ("120/120 (24 skipped)").
    let width = columns.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max(20);
    let mut out = String::new();
    let _ = write!(out, "{:<14}", "group");
    for (name, _) in columns {
        let _ = write!(out, " {name:>width$}");
    }
    out.push('\n');
    // `None` is the total row.
    let rows = groups.iter().map(|g| Some(*g)).chain([None]);
    for group in rows {
        let label = group.unwrap_or("total");
        let _ = write!(out, "{label:<14}");
        for (_, results) in columns {
            let mine: Vec<_> = results.iter().filter(|r| group.is_none_or(|g| r.group == g)).collect();
            let passed = mine.iter().filter(|r| r.verdict == Verdict::Passed).count();
            let skipped = mine.iter().filter(|r| matches!(r.verdict, Verdict::Skipped(_))).count();
            let cell = if skipped > 0 {
                format!("{passed}/{} ({skipped} skipped)", mine.len() - skipped)
            } else {
                format!("{passed}/{}", mine.len())
            };
            let _ = write!(out, " {cell:>width$}");
        }
        out.push('\n');
    }
    out
}

/// The failures, each with what differed.
pub fn failures(columns: &[Column]) -> Vec<String> {
    columns
        .iter()
        .flat_map(|(target, results)| {
            results.iter().filter_map(move |r| match &r.verdict {
                Verdict::Failed(why) => Some(format!("{target} {}/{}: {why}", r.group, r.name)),
                _ => None,
            })
        })
        .collect()
}
