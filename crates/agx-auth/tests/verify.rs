//! `Authenticator::verify_key` answers what `authenticate` answers for the
//! same key on the same route: the same response, byte for byte, and one
//! budget between them.

use std::sync::Arc;

use agx_auth::{
    AgentRecord, Authenticator, KeySpec, MemoryStore, Outcome, Quota, RateLimits, Resource, Scope, VerifyError,
    VerifyRequest, VerifyTarget,
};
use http::{HeaderMap, HeaderValue, Method};

struct World {
    auth: Authenticator,
    key: String,
}

async fn world() -> World {
    let store = Arc::new(MemoryStore::new());
    store.insert_org("org_1", "Acme");
    store.insert_org("org_2", "Other");
    store.insert_agent(AgentRecord::new("a1", "org_1", "Support"));
    let mut fenced = AgentRecord::new("a2", "org_1", "Fenced");
    fenced.allowed_domains = vec!["example.com".into()];
    store.insert_agent(fenced);
    store.insert_agent(AgentRecord::new("b1", "org_2", "Theirs"));
    let limits = RateLimits::default().with(agx_auth::EndpointClass::CHAT, Quota::try_per_minute(2).unwrap());
    let auth = Authenticator::builder(store.clone(), store).rate_limits(limits).build();
    let (key, _) = auth.issue_key(KeySpec::new("org_1", "k").scopes([Scope::CHAT])).await.unwrap();
    World { auth, key: key.expose_secret().to_owned() }
}

fn request<'a>(key: Option<&'a str>, method: Method, path: &'a str, origin: Option<&'a str>) -> VerifyRequest<'a> {
    VerifyRequest { key, target: VerifyTarget::Request { method, path }, origin, client: None, caller: None }
}

/// Sorted (name, value) pairs.
type Fields = Vec<(String, Vec<u8>)>;

/// The status, body and contract headers of an outcome, to compare two.
fn shape(outcome: &Outcome) -> (u16, Vec<u8>, Fields) {
    match outcome {
        Outcome::Deny(r) => {
            let resp = r.response();
            let mut headers: Vec<_> =
                resp.headers().iter().map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec())).collect();
            headers.sort();
            (resp.status().as_u16(), resp.body().to_vec(), headers)
        }
        Outcome::Allow(g) => {
            let mut headers: Vec<_> = g.header_fields().map(|(n, v)| (n.to_owned(), v.as_bytes().to_vec())).collect();
            headers.sort();
            (200, g.principal().org().as_bytes().to_vec(), headers)
        }
        Outcome::PassThrough => (0, Vec::new(), Vec::new()),
    }
}

/// The key a case presents: the world's own, or a literal.
#[derive(Clone, Copy)]
enum Presented {
    Good,
    Raw(&'static str),
}

#[tokio::test]
async fn a_verify_call_answers_as_the_header_would() {
    use Presented::{Good, Raw};
    let cases: [(Presented, Method, &str, Option<&str>); 8] = [
        (Good, Method::POST, "/api/public/agents/a1/chat", None),
        (Good, Method::GET, "/api/public/agents/a1", None),
        (Good, Method::POST, "/api/public/agents/b1/chat", None),
        (Good, Method::POST, "/api/public/agents/a2/chat", Some("https://evil.test")),
        (Good, Method::POST, "/api/public/agents/nope/chat", None),
        (Good, Method::POST, "/api/public/agents/a1/CHAT", None),
        (Raw(" \t"), Method::POST, "/api/public/agents/a1/chat", None),
        (Raw("agx_live_not-a-key"), Method::POST, "/api/public/agents/a1/chat", None),
    ];
    for (presented, method, path, origin) in cases {
        // A world for each side, so that both find the same budget.
        let (a, b) = (world().await, world().await);
        let pick = |w: &World| match presented {
            Good => w.key.clone(),
            Raw(k) => k.to_owned(),
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_str(&pick(&a)).unwrap());
        if let Some(o) = origin {
            headers.insert("origin", HeaderValue::from_str(o).unwrap());
        }
        let by_header = a.auth.authenticate(&method, path, &headers).await;
        let key_b = pick(&b);
        let verified = b.auth.verify_key(&request(Some(&key_b), method.clone(), path, origin)).await.unwrap();
        let (sa, sb) = (shape(&by_header), shape(&verified));
        assert_eq!(sa, sb, "{method} {path}");
    }
}

#[tokio::test]
async fn no_key_is_missing_and_the_query_is_dropped() {
    let w = world().await;
    let out = w.auth.verify_key(&request(None, Method::POST, "/api/public/agents/a1/chat", None)).await.unwrap();
    let Outcome::Deny(r) = out else { panic!("{out:?}") };
    assert_eq!(r.error().code(), "MISSING_API_KEY");
    let out = w.auth.verify_key(&request(Some(&w.key), Method::POST, "/api/public/agents/a1/chat?x=1", None)).await;
    assert!(matches!(out, Ok(Outcome::Allow(_))), "{out:?}");
    for bad in ["api/public", "", "/a b", "/clé", "http://x/api"] {
        let out = w.auth.verify_key(&request(Some(&w.key), Method::GET, bad, None)).await;
        assert_eq!(out.unwrap_err(), VerifyError::BadPath, "{bad:?}");
    }
}

#[tokio::test]
async fn a_permission_spends_the_same_budget_as_its_route() {
    let w = world().await;
    let permission = VerifyRequest {
        key: Some(&w.key),
        target: VerifyTarget::Permission { scope: "chat", class: "chat", resource: Resource::Agent("a1") },
        origin: None,
        client: None,
        caller: None,
    };
    let Ok(Outcome::Allow(g)) = w.auth.verify_key(&permission).await else { panic!("refused") };
    assert_eq!(g.rate_limit().unwrap().remaining, 1);
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_str(&w.key).unwrap());
    assert!(matches!(
        w.auth.authenticate(&Method::POST, "/api/public/agents/a1/chat", &headers).await,
        Outcome::Allow(_)
    ));
    let Ok(Outcome::Deny(r)) = w.auth.verify_key(&permission).await else { panic!("admitted past the quota") };
    assert_eq!(r.error().code(), "RATE_LIMITED");
    assert_eq!(r.rate_limit().unwrap().remaining, 0);
    // The org and scope checks apply to a permission as to a route.
    let theirs = VerifyRequest {
        target: VerifyTarget::Permission { scope: "chat", class: "chat", resource: Resource::Agent("b1") },
        ..permission.clone()
    };
    let Ok(Outcome::Deny(r)) = w.auth.verify_key(&theirs).await else { panic!("admitted") };
    assert_eq!(r.error().code(), "ORG_MISMATCH");
    let config = VerifyRequest {
        target: VerifyTarget::Permission { scope: "config", class: "config", resource: Resource::None },
        ..permission.clone()
    };
    let Ok(Outcome::Deny(r)) = w.auth.verify_key(&config).await else { panic!("admitted") };
    assert_eq!(r.error().code(), "INSUFFICIENT_SCOPE");
    assert_eq!(r.rate_limit().unwrap().class.as_str(), "config");
}

#[tokio::test]
async fn only_declared_scopes_and_classes_can_be_asked_for() {
    let w = world().await;
    for (scope, class, want) in [
        ("admin", "chat", VerifyError::UnknownScope),
        ("chat", "bulk", VerifyError::UnknownClass),
        // Both declared, never together: chat on config's larger budget.
        ("chat", "config", VerifyError::UnpairedPermission),
    ] {
        let q = VerifyRequest {
            key: Some(&w.key),
            target: VerifyTarget::Permission { scope, class, resource: Resource::None },
            origin: None,
            client: None,
            caller: None,
        };
        assert_eq!(w.auth.verify_key(&q).await.unwrap_err(), want);
        assert!(!want.message().contains("admin") && !want.message().contains("bulk"));
    }
}
