//! The suite as part of `cargo test`: every in-process target passes every
//! case, every adapter answers every request with the same bytes, and the
//! suite is as large as the contract needs.

use agx_conformance::{Suite, Verdict, matrix, run_target, targets};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_target_passes_every_case() {
    let suite = Suite::load().expect("case files parse");
    assert!(suite.len() >= 60, "only {} cases", suite.len());
    let mut columns = Vec::new();
    for target in targets::all().await.expect("targets start") {
        let results = run_target(&suite, &target).await;
        assert_eq!(results.len(), suite.len());
        columns.push((target.name, results));
    }
    println!("{}", matrix::render(&columns));
    let failures = matrix::failures(&columns);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let differences = agx_conformance::compare::differences(&columns);
    assert!(differences.is_empty(), "adapters differ:\n{}", differences.join("\n"));
    // In process, every case runs but the verify API's and the audit log's,
    // which only the reference server has (its own columns run them).
    use agx_conformance::case::Capability;
    let server_only: Vec<&str> = suite
        .cases()
        .filter(|(_, c)| c.requires.iter().any(|r| matches!(r, Capability::VerifyApi | Capability::AuditLog)))
        .map(|(_, c)| c.name.as_str())
        .collect();
    assert!(!server_only.is_empty());
    for (name, results) in &columns {
        let skipped: Vec<_> =
            results.iter().filter(|r| matches!(r.verdict, Verdict::Skipped(_))).map(|r| r.name.as_str()).collect();
        assert_eq!(skipped, server_only, "{name} skipped cases it can run");
    }
}

#[test]
fn every_documented_code_has_a_case() {
    let suite = Suite::load().expect("case files parse");
    let used: Vec<String> = suite
        .cases()
        .flat_map(|(_, c)| c.steps.iter())
        .filter_map(|s| match s {
            agx_conformance::case::Step::Request(r) => r.expect.code.clone(),
            agx_conformance::case::Step::Concurrent(_) => Some("RATE_LIMITED".into()),
            _ => None,
        })
        .collect();
    for code in suite.errors.keys() {
        assert!(used.contains(code), "no case expects {code}");
    }
    for doc in agx_auth::AuthError::all_docs() {
        let spec = &suite.errors[doc.code];
        assert_eq!(spec.status, doc.status.as_u16(), "{}", doc.code);
    }
    assert_eq!(suite.errors.len(), agx_auth::AuthError::all_docs().len());
}
