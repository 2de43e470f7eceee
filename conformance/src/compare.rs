//! The cross-adapter check: for every case, every target must have answered
//! with the same status, the same body bytes and the same values of the
//! contract's headers as the first target. Any difference is reported as a
//! diff.

use crate::matrix::Column;
use crate::runner::{Exchange, Verdict};

pub fn differences(columns: &[Column]) -> Vec<String> {
    let Some(((base_name, base), rest)) = columns.split_first() else { return Vec::new() };
    let mut out = Vec::new();
    for (name, results) in rest {
        for (a, b) in base.iter().zip(results) {
            let case = format!("{}/{}", a.group, a.name);
            // A column that cannot run a case (a black-box one without a
            // clock to move, say) has nothing to compare for it.
            if matches!(a.verdict, Verdict::Skipped(_)) || matches!(b.verdict, Verdict::Skipped(_)) {
                continue;
            }
            if a.transcript.len() != b.transcript.len() {
                out.push(format!(
                    "{case}: {base_name} made {} exchanges, {name} {}",
                    a.transcript.len(),
                    b.transcript.len()
                ));
                continue;
            }
            for (x, y) in a.transcript.iter().zip(&b.transcript) {
                if let Some(diff) = diff(x, y) {
                    out.push(format!("{case}: {}\n  - {base_name}: {}\n  + {name}: {}", x.request, diff.0, diff.1));
                }
            }
        }
    }
    out
}

/// The first field that differs, shown on both sides.
fn diff(x: &Exchange, y: &Exchange) -> Option<(String, String)> {
    if x.status != y.status {
        return Some((format!("status {}", x.status), format!("status {}", y.status)));
    }
    if x.body != y.body {
        let show = |b: &[u8]| format!("body {:?}", String::from_utf8_lossy(b));
        return Some((show(&x.body), show(&y.body)));
    }
    if x.headers != y.headers {
        let show = |h: &[(String, Vec<u8>)]| {
            let pairs: Vec<String> = h.iter().map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v))).collect();
            format!("headers [{}]", pairs.join(", "))
        };
        return Some((show(&x.headers), show(&y.headers)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::CaseResult;

    fn column(name: &str, status: u16, header: &str) -> Column {
        let exchange = Exchange {
            request: "GET /x".into(),
            status,
            body: b"{}".to_vec(),
            headers: vec![("ratelimit".into(), header.as_bytes().to_vec())],
        };
        let result =
            CaseResult { group: "g".into(), name: "c".into(), verdict: Verdict::Passed, transcript: vec![exchange] };
        (name.into(), vec![result])
    }

    #[test]
    fn identical_transcripts_agree_and_any_difference_is_reported() {
        assert!(differences(&[column("a", 200, "r=1"), column("b", 200, "r=1")]).is_empty());
        let status = differences(&[column("a", 200, "r=1"), column("b", 401, "r=1")]);
        assert_eq!(status.len(), 1);
        assert!(status[0].contains("status 200") && status[0].contains("status 401"), "{}", status[0]);
        let header = differences(&[column("a", 200, "r=1"), column("b", 200, "r=2")]);
        assert!(header[0].contains("ratelimit: r=2"), "{}", header[0]);
    }

    #[test]
    fn a_case_one_column_skipped_is_not_compared() {
        let mut skipped = column("b", 401, "r=9");
        skipped.1[0].verdict = Verdict::Skipped("needs Clock".into());
        skipped.1[0].transcript.clear();
        assert!(differences(&[column("a", 200, "r=1"), skipped]).is_empty());
    }
}
