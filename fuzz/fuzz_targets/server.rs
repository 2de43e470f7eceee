//! The reference server's whole HTTP application, in process, on the memory
//! store: arbitrary method, path, headers and body, through every route's
//! extractors, deserializers and validators (public, admin, dashboard).
//! The invariants: never a panic, never a 500; an error answered in JSON is
//! the envelope, and quotes no value of the request. Every free-form value
//! the harness sends (header values, JSON strings) starts with the marker
//! `zqx`, which no constant message holds: an error body with it in quotes
//! the request. (Checking for the values themselves would flag the fuzzer's
//! own finds: it learns the constant messages and sends pieces of them.)
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use agx_auth::{AgentRecord, KeyHasher, KeySpec};
use agx_server::backend::Backend;
use agx_server::conversations::Conversations;
use agx_server::dashboard::{DashboardStore, Settings};
use agx_server::state::AppState;
use arbitrary::Arbitrary;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const ADMIN: &str = "fuzz-admin-token-0123456789";
/// The start of every free-form value sent.
const MARK: &str = "zqx";

struct World {
    app: axum::Router,
    key: String,
    runtime: tokio::runtime::Runtime,
    shapes: Vec<String>,
    fields: Vec<String>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (app, key, doc) = runtime.block_on(async {
            let backend = Arc::new(Backend::memory());
            backend.admin.put_org("o", "O").await.unwrap();
            backend.admin.put_agent(AgentRecord::new("a", "o", "A")).await.unwrap();
            let core = AppState::authenticator(
                &backend,
                None,
                KeyHasher::default(),
                agx_server::state::RouteTable::Agentix,
                agx_auth::ClientAddresses::default(),
            );
            let (key, _) = core.0.issue_key(KeySpec::new("o", "k")).await.unwrap();
            let settings =
                Settings { session_ttl: Duration::from_secs(60), secure_cookies: false, trusted_proxies: vec![] };
            let state = AppState::new(backend, None, core, ADMIN.into(), DashboardStore::memory(), settings).unwrap();
            let conversations = Conversations::Memory(std::sync::Mutex::default());
            // The document the server serves at /openapi.json.
            let doc: serde_json::Value = serde_json::from_slice(&state.openapi).unwrap();
            (agx_server::app::build(state, conversations).unwrap(), key.expose_secret().to_owned(), doc)
        });
        World { app, key, runtime, shapes: shapes(&doc), fields: fields(&doc) }
    })
}

#[derive(Arbitrary, Debug)]
struct Request {
    method: u8,
    path: Path,
    credential: u8,
    content_type: u8,
    headers: Vec<(String, String)>,
    body: Body_,
}

#[derive(Arbitrary, Debug)]
enum Path {
    /// One of the routes' shapes, with these segments.
    Shaped(u8, String, String),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Body_ {
    Bytes(Vec<u8>),
    /// JSON of an arbitrary shape, more likely to pass the parser.
    Json(Vec<(String, Value)>),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Text(String),
    Number(f64),
    Whole(u64),
    Flag(bool),
    List(Vec<String>),
    Null,
}

impl Value {
    fn json(&self) -> serde_json::Value {
        match self {
            Value::Text(t) => format!("{MARK}{t}").into(),
            Value::Number(n) => serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, Into::into),
            Value::Whole(n) => (*n).into(),
            Value::Flag(b) => (*b).into(),
            Value::List(l) => l.iter().map(|t| format!("{MARK}{t}")).collect::<Vec<_>>().into(),
            Value::Null => serde_json::Value::Null,
        }
    }
}

/// Every path the server routes, from its own tables: the OpenAPI
/// document's (public and admin API), the dashboard's and the operations'.
/// A `{param}` segment is filled with the fuzzer's values.
fn shapes(doc: &serde_json::Value) -> Vec<String> {
    let mut shapes: Vec<String> = doc["paths"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
    shapes.extend(agx_server::dashboard::pages::ROUTES.iter().map(|p| (*p).to_owned()));
    shapes.extend(agx_server::ops::ROUTES.iter().map(|p| (*p).to_owned()));
    shapes.extend(agx_server::forward::ROUTES.iter().map(|p| p.replace("{*path}", "api/public/agents/x/config")));
    shapes.push(agx_server::secret_scanning::ROUTE.to_owned());
    shapes
}

/// Every property name in the document's schemas, so that generated
/// objects often reach the validators behind the parser.
fn fields(doc: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(props) = map.get("properties").and_then(|p| p.as_object()) {
                    out.extend(props.keys().cloned());
                }
                map.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&doc["components"], &mut out);
    out.sort();
    out.dedup();
    out
}

/// `shape` with its `{…}` segments filled, in turn, with `a` and `b`.
fn fill(shape: &str, a: &str, b: &str) -> String {
    let mut out = String::with_capacity(shape.len());
    let mut rest = shape;
    let mut n = 0;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        out.push_str(&rest[..open]);
        out.push_str(if n % 2 == 0 { a } else { b });
        n += 1;
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fuzz_target!(|req: Request| {
    let w = world();
    let methods = ["GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "HEAD"];
    let method = methods[usize::from(req.method) % methods.len()];
    let path = match &req.path {
        Path::Shaped(i, a, b) => fill(&w.shapes[usize::from(*i) % w.shapes.len()], a, b),
        Path::Raw(raw) => raw.clone(),
    };
    let Ok(uri) = path.parse::<http::Uri>() else { return };
    let body = match &req.body {
        Body_::Bytes(bytes) => bytes.clone(),
        Body_::Json(fields) => {
            let object: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .take(16)
                .map(|(k, v)| {
                    // Mostly a documented property; sometimes the fuzzer's own name.
                    let name = w.fields.get(k.len() % (w.fields.len() + 1)).unwrap_or(k).clone();
                    (name, v.json())
                })
                .collect();
            serde_json::to_vec(&object).unwrap()
        }
    };
    let mut builder = http::Request::builder().method(method).uri(uri);
    builder = match req.credential % 4 {
        0 => builder.header("authorization", format!("Bearer {ADMIN}")),
        1 => builder.header("x-api-key", &w.key),
        _ => builder,
    };
    builder = match req.content_type % 3 {
        0 => builder.header("content-type", "application/json"),
        1 => builder.header("content-type", "application/x-www-form-urlencoded"),
        _ => builder,
    };
    for (n, v) in req.headers.iter().take(8) {
        builder = builder.header(n.as_str(), format!("{MARK}{v}"));
    }
    let Ok(mut request) = builder.body(Body::from(body.clone())) else { return };
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
    let response = w.runtime.block_on(w.app.clone().oneshot(request)).unwrap();
    let status = response.status();
    assert_ne!(status.as_u16(), 500, "a 500 for {method} {path}");
    let is_json = response.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let bytes = w.runtime.block_on(response.into_body().collect()).map(|b| b.to_bytes()).unwrap_or_default();
    // A HEAD answer has the headers of the GET's and no body.
    if method != "HEAD" && (status.is_client_error() || status.is_server_error()) {
        if is_json {
            let value: serde_json::Value = serde_json::from_slice(&bytes).expect("an error body that is JSON");
            assert!(value["error"]["code"].is_string() && value["error"]["message"].is_string(), "not the envelope");
        }
        let text = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
        assert!(!text.contains(MARK), "an error quotes the request: {text}");
    }
});
