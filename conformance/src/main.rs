//! `agx-conformance`: runs the suite against every in-process target, prints
//! the matrix, and exits non-zero on any failure.

use std::process::ExitCode;

use agx_conformance::{Suite, matrix, run_target, targets};

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
    Ok(failures.is_empty())
}
