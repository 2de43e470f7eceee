//! Project automation: `cargo xtask <command>`.
//!
//! - `ci`: format check, clippy with warnings denied, the tests, the
//!   conformance matrix: what `.ci/run` runs.
//! - `conformance`: the suite against every adapter × store, as a matrix.
//! - `bench`: the criterion benchmarks of the hot path.

use std::env;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprintln!("usage: cargo xtask <ci|test|conformance|bench> [args…]");
        return ExitCode::FAILURE;
    };
    let rest = &args[1..];
    let result = match task.as_str() {
        "ci" => ci(),
        "test" => test(),
        "conformance" => conformance(rest),
        "bench" => bench(rest),
        other => Err(format!("unknown task `{other}`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(&cargo).args(args).status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed ({status})", args.join(" "))) }
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    test()?;
    conformance(&[])
}

/// The test command README.md gives.
fn test() -> Result<(), String> {
    cargo(&["test", "--workspace"])
}

fn conformance(extra: &[String]) -> Result<(), String> {
    let mut args = vec!["run", "--quiet", "--package", "agx-conformance", "--"];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)
}

fn bench(extra: &[String]) -> Result<(), String> {
    let mut args = vec!["bench", "--package", "agx-auth", "--bench", "hot_path", "--"];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)
}
