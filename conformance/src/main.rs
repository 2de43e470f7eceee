//! `agx-conformance`: runs the suite against every in-process target, prints
//! the matrix, and exits non-zero on any failure.

use std::process::ExitCode;

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

async fn run() -> Result<bool, String> {
    let suite = Suite::load()?;
    let mut columns = Vec::new();
    for target in targets::all().await? {
        let results = run_target(&suite, &target).await;
        columns.push((target.name, results));
    }
    println!("conformance: {} cases\n", suite.len());
    print!("{}", matrix::render(&columns));
    let failures = matrix::failures(&columns);
    for f in &failures {
        println!("\nFAILED {f}");
    }
    let differences = compare::differences(&columns);
    let exchanges: usize = columns.first().map_or(0, |(_, r)| r.iter().map(|c| c.transcript.len()).sum());
    if differences.is_empty() {
        println!("\ncross-adapter: {exchanges} exchanges per target, identical status, body and contract headers");
    }
    for d in &differences {
        println!("\nDIFFERS {d}");
    }
    Ok(failures.is_empty() && differences.is_empty())
}
