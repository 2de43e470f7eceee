//! `agx-server scan`: real keys found in files by checksum (look-alikes
//! not), reported by place and display prefix only, looked up in the
//! database, and revoked there with `--revoke`, which a running server
//! then refuses.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use agx_auth::{ApiKey, KeyMode};
use common::{call, free_port, start_with};

fn scan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agx-server"))
        .arg("scan")
        .args(args)
        .env_remove("AGX_DATABASE_URL")
        .env_remove("AGX_KEY_PEPPER")
        .output()
        .expect("agx-server runs")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dir(label: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("agx-scan-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("sub")).unwrap();
    d
}

fn tampered(key: &str) -> String {
    let mut b = key.as_bytes().to_vec();
    b[20] = if b[20] == b'x' { b'y' } else { b'x' };
    String::from_utf8(b).unwrap()
}

#[test]
fn real_keys_are_found_and_look_alikes_are_not() {
    let rng = ring::rand::SystemRandom::new();
    let live = ApiKey::generate(&rng, KeyMode::Live).unwrap();
    let test = ApiKey::generate(&rng, KeyMode::Test).unwrap();
    let d = dir("files");
    std::fs::write(d.join("config.env"), format!("# settings\nAGX_KEY={}\n", live.expose_secret())).unwrap();
    let notes = format!(
        "example: agx_live_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\ntypo: {}\nreal: \"{}\"\n",
        tampered(live.expose_secret()),
        test.expose_secret()
    );
    std::fs::write(d.join("sub/notes.md"), notes).unwrap();
    let mut binary = vec![0u8, 0xff, 0xfe];
    binary.extend_from_slice(live.expose_secret().as_bytes());
    std::fs::write(d.join("sub/dump.bin"), binary).unwrap();

    let out = scan(&[d.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "keys found fail the run");
    let report = text(&out);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3, "{report}");
    assert!(lines[0].contains("config.env:2:9: ") && lines[0].contains(&live.display_prefix()), "{report}");
    assert!(lines[1].contains("dump.bin:1:4: "), "{report}");
    assert!(lines[2].contains("notes.md:3:8: ") && lines[2].contains(&test.display_prefix()), "{report}");
    assert!(report.contains("not looked up"));
    let everything = format!("{report}{}", String::from_utf8_lossy(&out.stderr));
    for key in [&live, &test] {
        assert!(!everything.contains(key.expose_secret()), "a report never holds the key");
    }

    std::fs::write(d.join("config.env"), "nothing here").unwrap();
    std::fs::remove_dir_all(d.join("sub")).unwrap();
    let clean = scan(&[d.to_str().unwrap()]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    let no_db = scan(&["--revoke", d.to_str().unwrap()]);
    assert_eq!(no_db.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_db.stderr).contains("--revoke needs --database-url"));
    let missing = scan(&[d.join("absent").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(0), "nothing found");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("absent"), "the unreadable path is named");
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_keys_are_looked_up_and_revoked_in_the_database() {
    let Some(url) = agx_auth_postgres::testing::fresh_database("scan_revokes").await else { return };
    let port = free_port();
    let (_server, _) = start_with(port, Some(&url), &[]);
    let base = format!("http://127.0.0.1:{port}");
    let admin = [("authorization", "Bearer test-admin-token"), ("content-type", "application/json")];
    call("POST", &format!("{base}/api/admin/orgs"), &admin, r#"{"id":"o1","name":"Acme"}"#).await;
    call("POST", &format!("{base}/api/admin/orgs/o1/agents"), &admin, r#"{"id":"a1","name":"Bot"}"#).await;
    let (_, created) = call("POST", &format!("{base}/api/admin/orgs/o1/keys"), &admin, r#"{"name":"leaky"}"#).await;
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let stranger = ApiKey::generate(&ring::rand::SystemRandom::new(), KeyMode::Live).unwrap();

    let d = dir("db");
    std::fs::write(d.join("leak.log"), format!("token={key}\nother={}\n", stranger.expose_secret())).unwrap();
    let path = d.to_str().unwrap();
    let agent = format!("{base}/api/public/agents/a1");
    assert_eq!(call("GET", &agent, &[("x-api-key", &key)], "").await.0, 200);

    let out = scan(&["--database-url", &url, path]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out);
    assert!(report.contains(&format!("{id} in o1 (\"leaky\"): LIVE (revoke with --revoke)")), "{report}");
    assert!(report.contains("unknown to this database"), "{report}");
    assert_eq!(call("GET", &agent, &[("x-api-key", &key)], "").await.0, 200, "a scan alone changes nothing");

    let out = scan(&["--revoke", "--database-url", &url, path]);
    let report = text(&out);
    assert!(report.contains(&format!("{id} in o1 (\"leaky\"): LIVE, revoked")), "{report}");
    assert!(!report.contains(&key) && !String::from_utf8_lossy(&out.stderr).contains(&key));
    // The running server hears of the deletion (its cache is told by NOTIFY).
    let started = Instant::now();
    while call("GET", &agent, &[("x-api-key", &key)], "").await.0 != 401 {
        assert!(started.elapsed() < Duration::from_secs(2), "the revoked key still works on the server");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The org's audit log says which key, where it was found, and that the command line revoked it.
    let (_, log) = call("GET", &format!("{base}/api/admin/orgs/o1/audit-log?limit=1"), &admin, "").await;
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let event = &log["events"][0];
    assert_eq!((event["action"].as_str(), event["target"].as_str()), (Some("key.revoked_leaked"), Some(id.as_str())));
    assert_eq!(event["actor"], "cli");
    assert_eq!(event["changes"]["foundIn"], format!("{}:1", d.join("leak.log").display()));
    let again = text(&scan(&["--database-url", &url, path]));
    assert!(again.contains(&format!("{id} in o1: already deleted")), "{again}");
    let _ = std::fs::remove_dir_all(Path::new(path));
}
