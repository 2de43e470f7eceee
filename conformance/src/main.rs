//! `agx-conformance`: runs the suite against every in-process target, prints
//! the matrix, and exits non-zero on any failure or any difference between
//! adapters.
//!
//! Black-box targets:
//! - `agx-conformance --url URL --admin-token TOKEN` runs the suite against a
//!   running server (only), set up through its admin API;
//! - `agx-conformance --server PATH` also starts the reference server binary
//!   at PATH, on the memory store and (when PostgreSQL is there) on a fresh
//!   database (and with the Redis limiter, when Redis is there too), and adds
//!   them as columns of the matrix.
//! - `agx-conformance multi-instance --server PATH` starts two servers on one
//!   database and one Redis, then on a local Redis Cluster, and proves they
//!   behave as one service each time
//!   ([`agx_conformance::multi_instance`]).

use std::process::ExitCode;

use agx_conformance::blackbox::AdminApi;
use agx_conformance::{Suite, compare, matrix, run_target, targets};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("conformance: {e}");
            ExitCode::FAILURE
        }
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

async fn run() -> Result<bool, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "multi-instance") {
        return multi_instance(&flag(&args, "--server").ok_or("multi-instance needs --server PATH")?).await;
    }
    if args.first().is_some_and(|a| a == "faults") {
        let server = flag(&args, "--server").ok_or("faults needs --server PATH")?;
        let secs = flag(&args, "--secs").map_or(Ok(8), |s| s.parse()).map_err(|e| format!("--secs: {e}"))?;
        return agx_conformance::faults::run(&server, std::time::Duration::from_secs(secs)).await.map(|()| true);
    }
    if args.first().is_some_and(|a| a == "soak") {
        let server = flag(&args, "--server").ok_or("soak needs --server PATH")?;
        let secs = flag(&args, "--secs").map_or(Ok(120), |s| s.parse()).map_err(|e| format!("--secs: {e}"))?;
        let valid = flag(&args, "--valid").map_or(Ok(2000), |s| s.parse()).map_err(|e| format!("--valid: {e}"))?;
        return agx_conformance::soak::run(&server, secs, valid).await.map(|()| true);
    }
    if args.first().is_some_and(|a| a == "browser") {
        let server = flag(&args, "--server").ok_or("browser needs --server PATH")?;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let docs = args.iter().any(|a| a == "--docs");
        return agx_conformance::browser::run(&server, &root, docs).await.map(|()| true);
    }
    if args.first().is_some_and(|a| a == "schemathesis") {
        let server = flag(&args, "--server").ok_or("schemathesis needs --server PATH")?;
        return agx_conformance::schemathesis::run(&server).await.map(|()| true);
    }
    let suite = Suite::load()?;
    let black_box = match flag(&args, "--url") {
        Some(url) => {
            let token = flag(&args, "--admin-token").ok_or("--url needs --admin-token")?;
            let name = flag(&args, "--name").unwrap_or_else(|| "server".to_owned());
            Some(AdminApi::new(&url, &token).reference_server().target(&name))
        }
        None => None,
    };
    let mut targets = match black_box {
        Some(target) => vec![target],
        None => targets::all().await?,
    };
    // Keeps the spawned servers alive until the run ends.
    let mut servers = Vec::new();
    if let Some(path) = flag(&args, "--server") {
        for (server, target) in agx_conformance::blackbox::spawn_servers(&path).await? {
            servers.push(server);
            targets.push(target);
        }
    }
    let mut gateways = Vec::new();
    if let Some(path) = flag(&args, "--server") {
        for (processes, target) in agx_conformance::gateway::nginx_columns(&path).await? {
            gateways.push(processes);
            targets.push(target);
        }
    }
    let mut columns = Vec::new();
    for target in targets {
        let mut results = run_target(&suite, &target).await;
        if target.name.starts_with(agx_conformance::gateway::NGINX_COLUMN) {
            agx_conformance::gateway::mark_gateway_answers(&mut results);
        }
        columns.push((target.name, results));
    }
    println!("conformance: {} cases\n", suite.len());
    print!("{}", matrix::render(&columns));
    let failures = matrix::failures(&columns);
    for f in &failures {
        println!("\nFAILED {f}");
    }
    // The in-process targets and the gateway columns run the same stub app
    // (the gateway's upstream echoes the same bytes), so they must agree byte
    // for byte; the reference server's own columns answer with its real API.
    let stub_columns: Vec<_> = columns.iter().filter(|(name, _)| !name.starts_with("server/")).cloned().collect();
    if stub_columns.len() < 2 {
        return Ok(failures.is_empty());
    }
    let differences = compare::differences(&stub_columns);
    drop(servers);
    drop(gateways);
    let exchanges: usize = stub_columns.first().map_or(0, |(_, r)| r.iter().map(|c| c.transcript.len()).sum());
    if differences.is_empty() {
        println!("\ncross-adapter: {exchanges} exchanges per target, identical status, body and contract headers");
    }
    for d in &differences {
        println!("\nDIFFERS {d}");
    }
    Ok(failures.is_empty() && differences.is_empty())
}

async fn multi_instance(path: &str) -> Result<bool, String> {
    use agx_conformance::multi_instance::{self, SharedRedis};
    let mut passed = true;
    for redis in [SharedRedis::One, SharedRedis::Cluster] {
        let Some(instances) = multi_instance::start(path, redis).await? else {
            println!("multi-instance on {}: skipped (a service is absent; see the notice above)", redis.describe());
            continue;
        };
        let [(_a, a), (_b, b)] = &instances.servers;
        println!(
            "multi-instance: two agx-server processes ({} and {}) on one PostgreSQL database and {}",
            a.base_url,
            b.base_url,
            redis.describe()
        );
        let mut proof = multi_instance::prove(a, &b.base_url).await?;
        proof.control = Some(multi_instance::control(path, &instances.database_url).await?);
        print!("{}", proof.render());
        let failures = proof.failures();
        for f in &failures {
            println!("FAILED {f}");
        }
        if failures.is_empty() {
            println!("multi-instance: on {}, the two instances behave as one service", redis.describe());
        }
        passed &= failures.is_empty();
    }
    Ok(passed)
}
