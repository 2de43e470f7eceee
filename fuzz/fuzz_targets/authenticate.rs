//! The whole `Authenticator::authenticate` over a memory store, with
//! arbitrary requests. The invariants:
//!
//! - never `Allow` without a known, live, unexpired key, of the org that owns
//!   the agent or team the route names (and an active, public agent), with
//!   the route's scope;
//! - a refusal's body is one of the constant bodies of the error table (so
//!   it holds no value of the request);
//! - never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use agx_auth::{
    AgentRecord, ApiKey, AuthError, Authenticator, Directory, DirectoryAdmin, KeySpec, MemoryStore, Outcome, Resource,
    Scope, TeamRecord,
};
use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

struct World {
    auth: Authenticator,
    store: Arc<MemoryStore>,
    /// Plaintexts: of keys that may be admitted, then of keys that must not be.
    live: Vec<ApiKey>,
    dead: Vec<ApiKey>,
    dead_ids: Vec<agx_auth::KeyId>,
    runtime: tokio::runtime::Runtime,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let store = Arc::new(MemoryStore::new());
        let auth = Authenticator::builder(store.clone(), store.clone()).build();
        let (live, dead) = runtime.block_on(async {
            for org in ["a", "b"] {
                store.put_org(org, org).await.unwrap();
            }
            store.put_agent(AgentRecord::new("a1", "a", "A1")).await.unwrap();
            let mut walled = AgentRecord::new("a2", "a", "A2");
            walled.allowed_domains = vec!["app.example.com".into()];
            store.put_agent(walled).await.unwrap();
            let mut off = AgentRecord::new("a3", "a", "A3");
            off.active = false;
            store.put_agent(off).await.unwrap();
            store.put_agent(AgentRecord::new("b1", "b", "B1")).await.unwrap();
            let team = TeamRecord { id: "t1".into(), org: "a".into(), name: "T".into(), agent_ids: vec!["a1".into()] };
            store.put_team(team).await.unwrap();
            let issue = |spec: KeySpec| {
                let auth = &auth;
                async move { auth.issue_key(spec).await.unwrap() }
            };
            let all = issue(KeySpec::new("a", "all")).await.0;
            let chat = issue(KeySpec::new("a", "chat").scopes([Scope::CHAT])).await.0;
            let other = issue(KeySpec::new("b", "b")).await.0;
            let past = SystemTime::now() - Duration::from_secs(1);
            let (expired, old) = issue(KeySpec::new("a", "expired").expires_at(past)).await;
            let (deleted, record) = issue(KeySpec::new("a", "deleted")).await;
            auth.delete_key("a", record.id).await.unwrap();
            (vec![all, chat, other], vec![(expired, old.id), (deleted, record.id)])
        });
        let (dead, dead_ids) = dead.into_iter().unzip();
        World { auth, store, live, dead, dead_ids, runtime }
    })
}

#[derive(Arbitrary, Debug)]
struct Request {
    method: u8,
    /// A path from the table's shapes with these fills, or raw text.
    path: PathShape,
    headers: Vec<(u8, String)>,
}

#[derive(Arbitrary, Debug)]
enum PathShape {
    Agent(u8, String),
    Team(String, String),
    Raw(String),
}

const IDS: [&str; 6] = ["a1", "a2", "a3", "b1", "zz", ""];

fuzz_target!(|req: Request| {
    let w = world();
    let methods = [Method::GET, Method::POST, Method::PATCH, Method::HEAD, Method::OPTIONS, Method::DELETE];
    let method = &methods[usize::from(req.method) % methods.len()];
    let path = match &req.path {
        PathShape::Agent(i, tail) => format!("/api/public/agents/{}{tail}", IDS[usize::from(*i) % IDS.len()]),
        PathShape::Team(id, tail) => format!("/api/public/teams/{id}{tail}"),
        PathShape::Raw(raw) => raw.clone(),
    };
    let keys: Vec<&ApiKey> = w.live.iter().chain(&w.dead).collect();
    let mut headers = HeaderMap::new();
    for (pick, value) in req.headers.iter().take(16) {
        // Most headers carry one of the world's keys, or its origin.
        let (name, value) = match pick % 6 {
            0 => ("authorization", format!("Bearer {}", keys[usize::from(*pick / 6) % keys.len()].expose_secret())),
            1 => ("x-api-key", keys[usize::from(*pick / 6) % keys.len()].expose_secret().to_owned()),
            2 => ("origin", value.clone()),
            3 => ("authorization", value.clone()),
            4 => ("access-control-request-method", value.clone()),
            _ => ("x-api-key", value.clone()),
        };
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.append(n, v);
        }
    }
    let outcome = w.runtime.block_on(w.auth.authenticate(method, &path, &headers));
    match outcome {
        Outcome::Allow(grant) => {
            let principal = grant.principal();
            let id = principal.key_id();
            let live = w
                .live
                .iter()
                .any(|k| headers.values().any(|v| v.to_str().is_ok_and(|v| v.contains(k.expose_secret()))));
            assert!(live, "admitted without a live key in the request");
            assert!(!w.dead_ids.contains(&id), "admitted an expired or deleted key");
            assert!(principal.record().deleted_at.is_none() && !principal.record().is_expired(SystemTime::now()));
            if let Some(route) = w.auth.routes().classify(method, &path) {
                assert!(
                    principal.scopes().is_empty() || principal.has_scope(route.scope),
                    "admitted without the scope"
                );
                match route.resource {
                    Resource::Agent(agent) => {
                        let record = w.runtime.block_on(w.store.agent(agent)).expect("the memory store answers");
                        let record = record.expect("admitted for an agent that does not exist");
                        assert_eq!(record.org, principal.org(), "admitted for another org's agent");
                        assert!(record.active && record.public, "admitted for an agent that is off");
                    }
                    Resource::Team(team) => {
                        assert_eq!((team, principal.org()), ("t1", "a"), "admitted for a team not the key's org's");
                    }
                    Resource::None => {}
                }
            }
        }
        Outcome::Deny(rejection) => {
            let body = std::str::from_utf8(rejection.response().body()).expect("a UTF-8 body");
            // One of the table's constant bodies, so by construction it quotes nothing of the request.
            let known = AuthError::all_docs().iter().any(|d| d.envelope == body);
            assert!(known, "a refusal body not in the error table: {body}");
        }
        Outcome::PassThrough => {}
    }
});
