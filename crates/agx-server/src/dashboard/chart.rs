//! A key's last 30 days as a table and a server-rendered SVG chart, with
//! the days that depart from the key's usual pattern flagged.
//!
//! The rule (also in docs/decisions.md): a day is flagged when it has any
//! refusal (a 429 or a 403 that reached the key), or when its admitted
//! requests are more than 3 × the median of the 7 days before it and at
//! least 10 (so that a quiet key's 1 → 4 is no alarm). Days without a
//! record count as 0 in the median, so the first busy days of a key that
//! was quiet are flagged too: a key nobody used that is suddenly busy is
//! the pattern a leak makes.

use std::fmt::Write as _;

use agx_auth::{Tally, UsageReport};

/// How many days the chart shows, today included.
pub const DAYS: u32 = 30;

/// One day of the chart: its classes' tallies and whether it is flagged.
pub struct Day {
    /// Days since the Unix epoch, UTC.
    pub day: u32,
    /// `(class, tally)`, by class name.
    pub classes: Vec<(String, Tally)>,
    pub flag: Option<&'static str>,
}

impl Day {
    pub fn total(&self) -> Tally {
        let mut t = Tally::default();
        for (_, c) in &self.classes {
            t.add(*c);
        }
        t
    }
}

/// The 30 days up to `today`, oldest first, flagged by the rule above.
pub fn days(report: &UsageReport, today: u32) -> Vec<Day> {
    let first = today.saturating_sub(DAYS - 1);
    let mut days: Vec<Day> = (first..=today).map(|day| Day { day, classes: Vec::new(), flag: None }).collect();
    // The median looks back before the window too.
    let mut admitted_by_day = std::collections::BTreeMap::<u32, u64>::new();
    for d in &report.days {
        *admitted_by_day.entry(d.day).or_default() += d.tally.admitted;
        if let Some(slot) = d.day.checked_sub(first).and_then(|i| days.get_mut(i as usize)) {
            slot.classes.push((d.class.clone(), d.tally));
        }
    }
    for day in &mut days {
        day.classes.sort_by(|a, b| a.0.cmp(&b.0));
        let total = day.total();
        let mut before: Vec<u64> = (1..=7)
            .map(|back| day.day.checked_sub(back).and_then(|d| admitted_by_day.get(&d)).copied().unwrap_or(0))
            .collect();
        before.sort_unstable();
        let median = before[3];
        day.flag = if total.rate_limited + total.refused > 0 {
            Some("refusals")
        } else if total.admitted >= 10 && total.admitted > 3 * median {
            Some("more than 3 × the usual")
        } else {
            None
        };
    }
    days
}

/// The classes' colours, in the order the legend lists them.
const COLOURS: [&str; 4] = ["#4f46e5", "#0891b2", "#65a30d", "#9333ea"];

/// A bar per day: admitted requests stacked by class, and the refusals
/// (429 and 403) in red on top, each segment with its own text. Only the
/// server's numbers and class names (from the route table) are written
/// into it.
pub fn svg(days: &[Day], classes: &[String]) -> String {
    const W: u32 = 720;
    const H: u32 = 200;
    const LEFT: u32 = 40;
    const BOTTOM: u32 = 20;
    let peak = days
        .iter()
        .map(|d| {
            let t = d.total();
            t.admitted + t.rate_limited + t.refused
        })
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = (W - LEFT) / DAYS;
    let plot = H - BOTTOM - 10;
    let mut out = String::new();
    let refused: u64 = days.iter().map(|d| d.total().rate_limited + d.total().refused).sum();
    let admitted: u64 = days.iter().map(|d| d.total().admitted).sum();
    let _ = write!(
        out,
        r#"<svg role="img" aria-label="Requests per day, last 30 days: {admitted} admitted, {refused} refused" viewBox="0 0 {W} {H}" width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg">"#
    );
    let _ = write!(out, r##"<line x1="{LEFT}" y1="{y}" x2="{W}" y2="{y}" stroke="#999"/>"##, y = H - BOTTOM);
    let _ = write!(out, r##"<text x="0" y="14" font-size="11" fill="#555">{peak}</text>"##);
    let _ = write!(out, r##"<text x="0" y="{}" font-size="11" fill="#555">0</text>"##, H - BOTTOM);
    for (i, day) in days.iter().enumerate() {
        let x = LEFT + i as u32 * slot + 2;
        let mut y = H - BOTTOM;
        for (class, tally) in &day.classes {
            let h = (tally.admitted * u64::from(plot) / peak) as u32;
            if h == 0 {
                continue;
            }
            let colour = classes.iter().position(|c| c == class).map_or("#6b7280", |i| COLOURS[i % COLOURS.len()]);
            y -= h;
            let _ = write!(
                out,
                r#"<rect x="{x}" y="{y}" width="{}" height="{h}" fill="{colour}"><title>{}: {} {class}</title></rect>"#,
                slot - 4,
                crate::time::day(day.day),
                tally.admitted
            );
        }
        let total = day.total();
        let refusals = total.rate_limited + total.refused;
        if refusals > 0 {
            // At least a pixel's height: one refusal among thousands must still show.
            let h = ((refusals * u64::from(plot) / peak) as u32).max(2);
            y = y.saturating_sub(h);
            let _ = write!(
                out,
                r##"<rect x="{x}" y="{y}" width="{}" height="{h}" fill="#dc2626"><title>{}: {} rate limited, {} refused</title></rect>"##,
                slot - 4,
                crate::time::day(day.day),
                total.rate_limited,
                total.refused
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use agx_auth::UsageDay;

    fn day(day: u32, admitted: u64, refused: u64) -> UsageDay {
        UsageDay { day, class: "chat".into(), tally: Tally { admitted, rate_limited: 0, refused } }
    }

    #[test]
    fn flags_refusals_and_spikes_only() {
        let today = 20_000;
        let mut report = UsageReport::default();
        for d in today - 40..today - 2 {
            report.days.push(day(d, 10, 0));
        }
        report.days.push(day(today - 2, 31, 0)); // > 3 × 10
        report.days.push(day(today - 1, 30, 0)); // not more than 3 × 10
        report.days.push(day(today, 5, 1));
        let days = days(&report, today);
        assert_eq!(days.len(), 30);
        let flagged: Vec<(u32, &str)> = days.iter().filter_map(|d| Some((today - d.day, d.flag?))).collect();
        assert_eq!(flagged, [(2, "more than 3 × the usual"), (0, "refusals")]);
        // A quiet key's small jump is no alarm.
        let quiet = UsageReport { days: vec![day(today - 1, 1, 0), day(today, 4, 0)], last_used: None };
        assert!(super::days(&quiet, today).iter().all(|d| d.flag.is_none()));
        let svg = svg(&days, &["chat".to_owned()]);
        assert!(svg.starts_with("<svg role=\"img\"") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("#dc2626").count(), 1, "one day with refusals");
    }
}
