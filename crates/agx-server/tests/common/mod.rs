//! Starting the server binary and talking to it, for the integration tests.
#![allow(dead_code)] // each test file uses a part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the server and returns it with the demo key it printed (memory).
pub fn start(port: u16) -> (Server, String) {
    let (server, key) = start_with(port, None, &[]);
    (server, key.expect("the server printed a demo key"))
}

/// Starts the server with `database_url` (memory when `None`) and any other
/// settings in `env`; returns it with the demo key it printed (memory only).
pub fn start_with(port: u16, database_url: Option<&str>, env: &[(&str, &str)]) -> (Server, Option<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agx-server"));
    command
        .env("AGX_BIND", format!("127.0.0.1:{port}"))
        .env("AGX_ADMIN_TOKEN", "test-admin-token")
        .env_remove("AGX_REDIS_URL")
        .envs(env.iter().copied());
    match database_url {
        Some(url) => command.env("AGX_DATABASE_URL", url),
        None => command.env_remove("AGX_DATABASE_URL"),
    };
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("the agx-server binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut key = None;
    let mut lines = BufReader::new(stdout).lines();
    // Only the in-memory default prints a demo key (and a curl line after it).
    if database_url.is_none() {
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(k) = line.strip_prefix("demo key (every scope): ") {
                key = Some(k.to_owned());
            }
            if line.starts_with("try:") {
                break;
            }
        }
    }
    // Keep reading, so that the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let server = Server(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "the server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, key)
}

pub async fn call(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let (status, _, body) = exchange(method, url, headers, body).await;
    (status, body)
}

/// [`call`], with the response's headers.
#[allow(dead_code)] // not every test binary reads headers
pub async fn exchange(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, http::HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::builder().method(method).uri(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = client.request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}
