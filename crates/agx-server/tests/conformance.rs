//! The conformance suite against this binary as a black box, set up only
//! through its admin API: on the memory store, and on a fresh PostgreSQL
//! database when one is there (required under `AGX_REQUIRE_SERVICES=1`).

use agx_conformance::blackbox::spawn_servers;
use agx_conformance::{Suite, Verdict, matrix, run_target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_passes_every_case_it_can_run() {
    let suite = Suite::load().expect("case files parse");
    let mut columns = Vec::new();
    let servers = spawn_servers(env!("CARGO_BIN_EXE_agx-server")).await.expect("the server starts");
    for (_process, target) in &servers {
        columns.push((target.name.clone(), run_target(&suite, target).await));
    }
    println!("{}", matrix::render(&columns));
    let failures = matrix::failures(&columns);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for (name, results) in &columns {
        let passed = results.iter().filter(|r| r.verdict == Verdict::Passed).count();
        assert!(passed >= 90, "{name}: only {passed} cases ran and passed");
    }
}
