//! Runs cases against a target over real HTTP and says what differed.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use agx_auth::{AgentRecord, ApiKey, KeyMode, TeamRecord};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use tokio::task::JoinSet;

use crate::case::{
    BuiltValue, Capability, Case, ConcurrentStep, ErrorSpec, Expect, HeaderSpec, RequestSpec, RequestStep, Step, World,
};
use crate::client::{Client, Reply};
use crate::fixtures::{Fixtures, IssuedKey, KeyRequest};
use crate::suite::Suite;

/// A server to test: where it listens and how to set up its state.
pub struct Target {
    /// The matrix column, e.g. `axum/memory`.
    pub name: String,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    /// Prefix of every fixture id this run creates. A long-lived server
    /// needs one unique per run ([`run_namespace`]); a fresh in-process one
    /// can use a constant, which keeps transcripts comparable.
    pub namespace: String,
    pub fixtures: Arc<dyn Fixtures>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed(String),
    Skipped(String),
}

/// What one request got back, kept so that targets can be compared byte for
/// byte (status, body and the contract's headers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub request: String,
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// The headers whose values must be identical across adapters.
pub const CONTRACT_HEADERS: [&str; 5] =
    ["www-authenticate", "retry-after", "ratelimit-policy", "ratelimit", "content-type"];

#[derive(Clone, Debug)]
pub struct CaseResult {
    pub group: String,
    pub name: String,
    pub verdict: Verdict,
    pub transcript: Vec<Exchange>,
}

/// Runs every case of the suite against one target, one case at a time (cases
/// that move the clock would disturb each other otherwise).
pub async fn run_target(suite: &Suite, target: &Target) -> Vec<CaseResult> {
    let client = Client::new();
    let tag = &target.namespace;
    let mut results = Vec::new();
    for (index, (group, case)) in suite.cases().enumerate() {
        let ns = format!("{tag}c{index}");
        let mut run = CaseRun { target, client: &client, ns, keys: HashMap::new(), transcript: Vec::new() };
        let verdict = match missing_capability(case, target.fixtures.capabilities()) {
            Some(cap) => Verdict::Skipped(format!("needs {cap:?}")),
            None => match run.run(suite, case).await {
                Ok(()) => Verdict::Passed,
                Err(why) => Verdict::Failed(why),
            },
        };
        // A case that failed half-way must not leave the store switched off for the next.
        if case.requires.contains(&Capability::Faults) {
            let _ = target.fixtures.set_store_available(true).await;
        }
        if case.requires.contains(&Capability::LimiterFaults) {
            let _ = target.fixtures.set_limiter_available(true).await;
        }
        results.push(CaseResult {
            group: group.to_owned(),
            name: case.name.clone(),
            verdict,
            transcript: run.transcript,
        });
    }
    results
}

fn missing_capability(case: &Case, has: &[Capability]) -> Option<Capability> {
    case.requires.iter().copied().find(|c| !has.contains(c))
}

/// A short tag unique to this run, so that a long-lived server's state from
/// earlier runs never collides with this one's.
pub fn run_namespace() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("r{:x}", nanos % 0xffff_ffff)
}

/// A request with its placeholders expanded, and a label for messages.
struct Prepared {
    label: String,
    url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

struct CaseRun<'a> {
    target: &'a Target,
    client: &'a Client,
    ns: String,
    keys: HashMap<String, (String, IssuedKey)>,
    transcript: Vec<Exchange>,
}

impl CaseRun<'_> {
    fn id(&self, name: &str) -> String {
        format!("{}-{name}", self.ns)
    }

    async fn run(&mut self, suite: &Suite, case: &Case) -> Result<(), String> {
        self.build_world().await?;
        for (name, k) in &case.keys {
            let org = self.id(&k.org);
            let request = KeyRequest {
                org: org.clone(),
                name: name.clone(),
                scopes: k.scopes.clone(),
                test_mode: k.test_mode,
                expires_in: k.expires_in.map(Duration::from_secs),
                rate_limits: k.rate_limits.clone(),
                allowed_networks: k.allowed_networks.clone(),
                credits: k.credits,
            };
            let issued = self.target.fixtures.key(&request).await.map_err(|e| format!("fixture key {name}: {e}"))?;
            if k.deleted {
                self.target.fixtures.delete_key(&org, &issued.id).await?;
            }
            self.keys.insert(name.clone(), (org, issued));
        }
        for (i, step) in case.steps.iter().enumerate() {
            self.step(suite, step).await.map_err(|e| format!("step {}: {e}", i + 1))?;
        }
        Ok(())
    }

    async fn build_world(&self) -> Result<(), String> {
        let f = &self.target.fixtures;
        for org in World::ORGS {
            f.org(&self.id(org), &format!("Org {}", org.to_uppercase())).await?;
        }
        for a in &World::AGENTS {
            let mut agent = AgentRecord::new(self.id(a.name), self.id(a.org), format!("Agent {}", a.name));
            agent.allowed_domains = a.allowed_domains.iter().map(|d| (*d).to_owned()).collect();
            agent.active = a.active;
            agent.public = a.public;
            f.agent(agent).await?;
        }
        for (team, org, agents) in World::TEAMS {
            f.team(TeamRecord {
                id: self.id(team),
                org: self.id(org),
                name: format!("Team {team}"),
                agent_ids: agents.iter().map(|a| self.id(a)).collect(),
            })
            .await?;
        }
        Ok(())
    }

    async fn step(&mut self, suite: &Suite, step: &Step) -> Result<(), String> {
        let f = &self.target.fixtures;
        match step {
            Step::Request(s) => self.request_step(suite, s).await,
            Step::Concurrent(s) => self.concurrent_step(suite, s).await,
            Step::Advance { advance } => {
                let by = Duration::try_from_secs_f64(*advance).map_err(|e| e.to_string())?;
                f.advance(by).await
            }
            Step::DeleteKey { delete_key } => {
                let (org, key) = self.key(delete_key)?;
                f.delete_key(&org, &key.id).await
            }
            Step::RollKey(r) => {
                let (org, key) = self.key(&r.roll_key)?;
                let new = f.roll_key(&org, &key.id, Duration::from_secs(r.grace_seconds)).await?;
                self.keys.insert(r.new_key.clone(), (org, new));
                Ok(())
            }
            Step::StoreAvailable { store_available } => f.set_store_available(*store_available).await,
            Step::LimiterAvailable { limiter_available } => f.set_limiter_available(*limiter_available).await,
            Step::ReportLeak { report_leak, org, expect } => {
                let mut text = String::from("agx_live_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX (an example, not a key)\n");
                for (i, name) in report_leak.iter().enumerate() {
                    text.push_str(&format!("line {i}: export AGX_KEY={}\n", self.key(name)?.1.key));
                }
                let got = f.report_leak(&self.id(org), &text).await?;
                if &got != expect {
                    return Err(format!("the leak report answered {got:?}, expected {expect:?}"));
                }
                Ok(())
            }
            Step::AuditLog { audit_log, expect } => {
                let events = f.audit_events(&self.id(audit_log), expect.len()).await?;
                let text = serde_json::Value::from(events.clone()).to_string();
                if let Some(name) = self.keys.iter().find(|(_, (_, k))| text.contains(&k.key)).map(|(n, _)| n) {
                    return Err(format!("the audit log holds key {name}'s plaintext"));
                }
                if events.len() != expect.len() {
                    return Err(format!("{} audit events, expected {}: {text}", events.len(), expect.len()));
                }
                for (i, (got, want)) in events.iter().zip(expect).enumerate() {
                    let want = self.expand_json(want)?;
                    if !matches_pattern(got, &want) {
                        return Err(format!("audit event {} is {got}, expected one like {want}", i + 1));
                    }
                }
                Ok(())
            }
        }
    }

    fn key(&self, name: &str) -> Result<(String, IssuedKey), String> {
        self.keys.get(name).cloned().ok_or_else(|| format!("the case declares no key `{name}`"))
    }

    async fn request_step(&mut self, suite: &Suite, s: &RequestStep) -> Result<(), String> {
        let Prepared { label, url, headers, body } = self.build(&s.request)?;
        let want_json = s.expect.json.as_ref().map(|j| self.expand_json(j)).transpose()?;
        for n in 0..s.repeat {
            let reply = self.client.send(&s.request.method, &url, &headers, body.clone()).await?;
            self.record(&label, &reply);
            let mut problems = check(suite, &s.expect, &reply, &s.request.method, &self.ns);
            if let Some(want) = &want_json {
                match serde_json::from_slice::<serde_json::Value>(&reply.body) {
                    Ok(got) if &got == want => {}
                    Ok(got) => problems.push(format!("body {got}, expected {want}")),
                    Err(_) => problems.push(format!("body is not JSON: {}", String::from_utf8_lossy(&reply.body))),
                }
            }
            if !problems.is_empty() {
                let which = if s.repeat > 1 { format!(" (repeat {} of {})", n + 1, s.repeat) } else { String::new() };
                return Err(format!("{label}{which}:\n      {}", problems.join("\n      ")));
            }
        }
        Ok(())
    }

    async fn concurrent_step(&mut self, suite: &Suite, s: &ConcurrentStep) -> Result<(), String> {
        let Prepared { label, url, headers, body } = self.build(&s.request)?;
        let mut set = JoinSet::new();
        for _ in 0..s.concurrent {
            let (client, url, headers, method, body) =
                (self.client.clone(), url.clone(), headers.clone(), s.request.method.clone(), body.clone());
            set.spawn(async move { client.send(&method, &url, &headers, body).await });
        }
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        let mut problems = Vec::new();
        while let Some(joined) = set.join_next().await {
            let reply = joined.map_err(|e| format!("task: {e}"))??;
            *counts.entry(reply.status.as_u16().to_string()).or_default() += 1;
            if let Some(code) = suite.code_for_status(reply.status.as_u16()) {
                let expect = Expect {
                    status: reply.status.as_u16(),
                    code: Some(code.to_owned()),
                    scope: None,
                    headers: BTreeMap::new(),
                    principal: None,
                    json: None,
                };
                problems.extend(check(suite, &expect, &reply, &s.request.method, &self.ns));
            }
        }
        self.transcript.push(Exchange {
            request: format!("{label} ×{}", s.concurrent),
            status: 0,
            body: format!("{counts:?}").into_bytes(),
            headers: Vec::new(),
        });
        if counts != s.expect_counts {
            problems.insert(0, format!("status counts {counts:?}, expected {:?}", s.expect_counts));
        }
        problems.dedup();
        if problems.is_empty() { Ok(()) } else { Err(format!("{label}:\n      {}", problems.join("\n      "))) }
    }

    fn record(&mut self, label: &str, reply: &Reply) {
        let headers = CONTRACT_HEADERS
            .iter()
            .flat_map(|name| reply.headers.get_all(*name).iter().map(|v| ((*name).to_owned(), v.as_bytes().to_vec())))
            .collect();
        self.transcript.push(Exchange {
            request: label.to_owned(),
            status: reply.status.as_u16(),
            body: reply.body.to_vec(),
            headers,
        });
    }

    /// Expands placeholders: returns a label for messages, the URL and headers.
    fn build(&self, r: &RequestSpec) -> Result<Prepared, String> {
        let path = self.expand(&r.path)?;
        let mut headers = Vec::new();
        let mut shown = Vec::new();
        for (name, spec) in &r.headers {
            let name_h = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header name {name}: {e}"))?;
            let bytes = match spec {
                HeaderSpec::Text(t) => self.expand(t)?.into_bytes(),
                HeaderSpec::Built(b) => built(b),
            };
            shown.push(format!("{name}: {}", describe(spec)));
            let value = HeaderValue::from_bytes(&bytes).map_err(|e| format!("header value for {name}: {e}"))?;
            headers.push((name_h, value));
        }
        let body = match (&r.body, &r.raw_body) {
            (Some(json), _) => Bytes::from(self.expand_json(json)?.to_string()),
            (None, Some(raw)) => Bytes::from(raw.clone()),
            (None, None) => default_body(&r.method),
        };
        // The body is JSON; say so, unless the case sends its own content type.
        if !body.is_empty() && !headers.iter().any(|(n, _)| n == http::header::CONTENT_TYPE) {
            headers.push((http::header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
        }
        // A key in a body is shown by its placeholder, as in a header.
        let shown_body = r.body.as_ref().map(|b| format!(" {b}")).unwrap_or_default();
        let label = format!("{} {} [{}]{shown_body}", r.method, r.path, shown.join(", "));
        Ok(Prepared { label, url: format!("{}{path}", self.target.base_url), headers, body })
    }

    /// `json` with placeholders expanded in every string.
    fn expand_json(&self, json: &serde_json::Value) -> Result<serde_json::Value, String> {
        use serde_json::Value;
        Ok(match json {
            Value::String(s) => Value::String(self.expand(s)?),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.expand_json(v)).collect::<Result<_, _>>()?),
            Value::Object(fields) => Value::Object(
                fields.iter().map(|(k, v)| Ok((k.clone(), self.expand_json(v)?))).collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }

    fn expand(&self, template: &str) -> Result<String, String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').ok_or_else(|| format!("unclosed placeholder in {template}"))? + start;
            let token = &rest[start + 1..end];
            let (kind, arg) = token.split_once(':').unwrap_or((token, ""));
            match kind {
                "agent" | "team" | "org" => out.push_str(&self.id(arg)),
                "key" => out.push_str(&self.key(arg)?.1.key),
                "keyId" => out.push_str(&self.key(arg)?.1.id),
                "unknownKey" => out.push_str(&fresh_key(KeyMode::Live)?),
                "badChecksum" => out.push_str(&mutate(&self.key(arg)?.1.key, 40)),
                "flipRandom" => out.push_str(&mutate(&self.key(arg)?.1.key, 20)),
                _ => return Err(format!("unknown placeholder {{{token}}}")),
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Whether `got` has every field of `pattern` (recursively, for objects),
/// equal; arrays and scalars are compared whole.
fn matches_pattern(got: &serde_json::Value, pattern: &serde_json::Value) -> bool {
    match (got, pattern) {
        (serde_json::Value::Object(g), serde_json::Value::Object(p)) => {
            p.iter().all(|(k, v)| g.get(k).is_some_and(|gv| matches_pattern(gv, v)))
        }
        _ => got == pattern,
    }
}

/// The key with one base62 character changed at `at`.
fn mutate(key: &str, at: usize) -> String {
    let mut bytes = key.as_bytes().to_vec();
    if let Some(b) = bytes.get_mut(at) {
        *b = if *b == b'x' { b'y' } else { b'x' };
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn built(b: &BuiltValue) -> Vec<u8> {
    let mut v = b.prefix.as_bytes().to_vec();
    v.extend_from_slice(&b.bytes);
    v.extend(std::iter::repeat_n(b.repeat.as_bytes(), b.times).flatten());
    v
}

fn describe(spec: &HeaderSpec) -> String {
    match spec {
        HeaderSpec::Text(t) => t.clone(),
        HeaderSpec::Built(b) => {
            let mut s = b.prefix.clone();
            if !b.bytes.is_empty() {
                let _ = write!(s, "<bytes {:?}>", b.bytes);
            }
            if b.times > 0 {
                let _ = write!(s, "<{:?} × {}>", b.repeat, b.times);
            }
            s
        }
    }
}

/// Chat and PATCH bodies that a real server accepts; the auth layer never
/// reads them.
fn default_body(method: &str) -> Bytes {
    match method {
        "POST" => Bytes::from_static(br#"{"message":"hello","sessionId":"conformance"}"#),
        "PATCH" => Bytes::from_static(br#"{"metadata":{"source":"conformance"}}"#),
        _ => Bytes::new(),
    }
}

/// Everything that differs between what a case expects and what came back.
fn check(suite: &Suite, expect: &Expect, reply: &Reply, method: &str, ns: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let header = |name: &str| reply.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if reply.status.as_u16() != expect.status {
        problems.push(format!(
            "status {} (body {}), expected {}",
            reply.status.as_u16(),
            String::from_utf8_lossy(&reply.body),
            expect.status
        ));
    }
    if let Some(code) = &expect.code {
        match suite.errors.get(code) {
            None => problems.push(format!("errors.json documents no code {code}")),
            Some(spec) => problems.extend(check_error(code, spec, expect, reply, method, &header)),
        }
    }
    for (name, want) in &expect.headers {
        let got = header(name);
        if got.as_deref() != want.as_deref() {
            problems.push(format!("header {name}: {got:?}, expected {want:?}"));
        }
    }
    if let Some(p) = &expect.principal {
        let want = serde_json::json!({
            "org": format!("{ns}-{}", p.org),
            "keyName": p.key_name,
            "mode": p.mode,
            "scopes": p.scopes,
        });
        match serde_json::from_slice::<serde_json::Value>(&reply.body) {
            Ok(got) if got == want => {}
            Ok(got) => problems.push(format!("principal {got}, expected {want}")),
            Err(_) => {
                problems.push(format!("body is not the principal echo: {}", String::from_utf8_lossy(&reply.body)))
            }
        }
    }
    problems
}

fn check_error(
    code: &str,
    spec: &ErrorSpec,
    expect: &Expect,
    reply: &Reply,
    method: &str,
    header: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if spec.status != expect.status {
        problems.push(format!("case data: {code} is documented as {}, the case says {}", spec.status, expect.status));
    }
    let body = if method == "HEAD" {
        String::new()
    } else {
        serde_json::json!({"error": {"code": code, "message": spec.message}}).to_string()
    };
    if reply.body != body.as_bytes() {
        problems.push(format!("body {:?}, expected {body:?}", String::from_utf8_lossy(&reply.body)));
    }
    if header("content-type").as_deref() != Some("application/json") {
        problems.push(format!("content-type {:?}, expected application/json", header("content-type")));
    }
    let challenge = match (&spec.www_authenticate, &expect.scope) {
        (Some(t), Some(scope)) => Some(t.replace("{scope}", scope)),
        (Some(t), None) if t.contains("{scope}") => {
            problems.push(format!("case data: {code} needs the expected `scope`"));
            None
        }
        (t, _) => t.clone(),
    };
    if header("www-authenticate") != challenge {
        problems.push(format!("www-authenticate {:?}, expected {challenge:?}", header("www-authenticate")));
    }
    match (header("retry-after"), spec.retry_after) {
        (Some(v), true) if v.parse::<u64>().is_ok_and(|n| n >= 1) => {}
        (None, false) => {}
        (got, want) => {
            problems.push(format!("retry-after {got:?}, expected {}", if want { "an integer ≥ 1" } else { "none" }))
        }
    }
    for name in ["ratelimit-policy", "ratelimit"] {
        if header(name).is_some() != spec.rate_limit_fields {
            problems.push(format!(
                "{name} {:?}, expected {}",
                header(name),
                if spec.rate_limit_fields { "present" } else { "absent" }
            ));
        }
    }
    problems
}

/// A key that is well formed but was never issued.
fn fresh_key(mode: KeyMode) -> Result<String, String> {
    ApiKey::generate(&ring::rand::SystemRandom::new(), mode)
        .map(|k| k.expose_secret().to_owned())
        .map_err(|_| "no randomness".to_owned())
}
