//! The verify API's Python and TypeScript clients, as docs/guides/verify-api.md
//! writes them, against the binary: an allowed verdict, a refusal relayed
//! byte for byte as the public API answers it, a permission, and failing
//! closed when there is no verdict to be had (no server, a malformed call).
//! The TypeScript client is compiled with `tsc` and run with `node`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{exchange, free_port, start};
use serde_json::Value;

/// The first fenced block of `lang` in the guide: the client itself.
fn guide_block(lang: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/guides/verify-api.md");
    let text = std::fs::read_to_string(&path).expect("the guide is there");
    let fence = format!("```{lang}\n");
    let start = text.find(&fence).unwrap_or_else(|| panic!("no ```{lang} block")) + fence.len();
    let len = text[start..].find("```").expect("the block ends");
    text[start..start + len].to_owned()
}

/// Whether `program` runs; when it does not, a notice, and a failure under
/// `AGX_REQUIRE_SERVICES=1`.
fn have(program: &str, why: &str) -> bool {
    if Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(
        !std::env::var("AGX_REQUIRE_SERVICES").is_ok_and(|v| v == "1"),
        "{program} is required ({why}) under AGX_REQUIRE_SERVICES=1"
    );
    eprintln!("verify_clients: {program} is not installed ({why}); skipped");
    false
}

/// The driver's results: one JSON array, printed on stdout.
fn run(command: &mut Command) -> Vec<Value> {
    let out = command.output().expect("the driver runs");
    assert!(out.status.success(), "driver failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// What every client must have answered, in the drivers' order.
async fn check(results: &[Value], base: &str, key: &str) {
    let [allowed, refused, relayed, permission, no_server, malformed] = results else {
        panic!("six results expected: {results:?}")
    };
    assert_eq!(allowed["allowed"], true, "{allowed}");
    assert_eq!(allowed["principal"]["org"], "demo-org");
    assert_eq!(allowed["principal"]["mode"], "live");
    assert_eq!(allowed["headers"]["ratelimit-policy"], r#""chat";q=60;w=60"#);
    assert!(!allowed.to_string().contains(key), "the key is never in a verdict");

    assert_eq!((&refused["allowed"], &refused["code"]), (&Value::Bool(false), &Value::from("INVALID_API_KEY")));
    // The refusal the client relays is the public API's own answer to that key.
    let (status, headers, body) =
        exchange("GET", &format!("{base}/api/public/agents/demo-agent"), &[("x-api-key", "agx_live_notakey")], "")
            .await;
    assert_eq!(relayed["status"], status);
    assert_eq!(relayed["body"], body, "byte for byte");
    assert_eq!(relayed["headers"]["www-authenticate"], headers["www-authenticate"].to_str().unwrap());
    assert_eq!(relayed["headers"]["content-type"], "application/json");

    assert_eq!(permission["allowed"], true, "{permission}");
    assert_eq!(permission["rateLimit"]["class"], "chat");
    for closed in [no_server, malformed] {
        assert_eq!(closed["allowed"], false, "{closed}");
        assert_eq!(closed["code"], "AUTH_UNAVAILABLE");
    }
}

const PYTHON_DRIVER: &str = r#"
import json, sys
import agx_verify as agx
base, key, dead = sys.argv[1], sys.argv[2], sys.argv[3]
chat = "/api/public/agents/demo-agent/chat"
refused = agx.verify(base, "agx_live_notakey", "GET", "/api/public/agents/demo-agent")
status, headers, body = agx.refusal(refused)
print(json.dumps([
    agx.verify(base, key, "POST", chat),
    refused,
    {"status": status, "headers": headers, "body": body},
    agx.verify_permission(base, key, "chat", "chat", agent="demo-agent"),
    agx.verify(dead, key, "POST", chat, timeout=1.0),
    agx.verify(base, key, "POST", "no-leading-slash"),
]))
"#;

const NODE_DRIVER: &str = r#"
import { verify, refusal } from "./agxVerify.js";
const [base, key, dead] = process.argv.slice(2);
const chat = { method: "POST", path: "/api/public/agents/demo-agent/chat" };
const refused = await verify(base, "agx_live_notakey", { method: "GET", path: "/api/public/agents/demo-agent" });
console.log(JSON.stringify([
  await verify(base, key, chat),
  refused,
  refusal(refused),
  await verify(base, key, { scope: "chat", class: "chat", agent: "demo-agent" }),
  await verify(dead, key, chat, undefined, 1000),
  await verify(base, key, { method: "POST", path: "no-leading-slash" }),
]));
"#;

#[tokio::test]
async fn the_guides_clients_get_verdicts_and_fail_closed() {
    let port = free_port();
    let (_server, key) = start(port);
    let base = format!("http://127.0.0.1:{port}");
    // Nothing listens here.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let dir = std::env::temp_dir().join(format!("agx-verify-clients-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    if have("python3", "the Python client of the verify API guide") {
        std::fs::write(dir.join("agx_verify.py"), guide_block("python")).unwrap();
        std::fs::write(dir.join("driver.py"), PYTHON_DRIVER).unwrap();
        let results = run(Command::new("python3").current_dir(&dir).args(["driver.py", &base, &key, &dead]));
        check(&results, &base, &key).await;
    }

    if have("node", "the TypeScript client of the verify API guide")
        && have("tsc", "the TypeScript client of the verify API guide; npm install -g typescript")
    {
        std::fs::write(dir.join("agxVerify.ts"), guide_block("typescript")).unwrap();
        let compiled = Command::new("tsc")
            .current_dir(&dir)
            .args(["--strict", "--target", "es2022", "--module", "es2022", "--lib", "es2022,dom", "agxVerify.ts"])
            .output()
            .expect("tsc runs");
        assert!(compiled.status.success(), "tsc:\n{}", String::from_utf8_lossy(&compiled.stdout));
        // tsc writes ES modules; say so, whatever this Node.js guesses.
        std::fs::write(dir.join("package.json"), r#"{"type": "module"}"#).unwrap();
        std::fs::write(dir.join("driver.mjs"), NODE_DRIVER).unwrap();
        let results = run(Command::new("node").current_dir(&dir).args(["driver.mjs", &base, &key, &dead]));
        check(&results, &base, &key).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
