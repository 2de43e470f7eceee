//! The layer on plain tower services and on an axum router, without a socket.

use std::convert::Infallible;
use std::sync::Arc;

use agx_auth::{AgentRecord, Authenticator, KeySpec, MemoryStore, Principal};
use agx_auth_axum::{AuthLayer, Authenticated};
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt, service_fn};

async fn world() -> (Arc<Authenticator>, String) {
    let store = Arc::new(MemoryStore::new());
    store.insert_org("org_1", "Acme");
    store.insert_agent(AgentRecord::new("agent_1", "org_1", "Support"));
    let auth = Arc::new(Authenticator::builder(store.clone(), store).build());
    let (key, _) = auth.issue_key(KeySpec::new("org_1", "test")).await.unwrap();
    (auth, key.expose_secret().to_owned())
}

/// A tower service that is not axum: it reports which org it was called for.
fn plain_service()
-> impl tower::Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|req: Request<Full<Bytes>>| async move {
        let org = req.extensions().get::<Principal>().map_or("none", |p| p.org()).to_owned();
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(org))))
    })
}

async fn body_of<B: http_body::Body>(b: B) -> Vec<u8>
where
    B::Error: std::fmt::Debug,
{
    b.collect().await.unwrap().to_bytes().to_vec()
}

#[tokio::test]
async fn works_on_any_tower_service() {
    let (auth, key) = world().await;
    let svc = ServiceBuilder::new().layer(AuthLayer::new(auth)).service(plain_service());
    let req = Request::post("/api/public/agents/agent_1/chat")
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["ratelimit"], r#""chat";r=59;t=1"#);
    assert_eq!(body_of(resp.into_body()).await, b"org_1");

    let req = Request::post("/api/public/agents/agent_1/chat").body(Full::new(Bytes::new())).unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], r#"Bearer realm="agentix""#);
}

#[tokio::test]
async fn a_one_mebibyte_or_non_utf8_header_is_a_401_not_a_panic() {
    let (auth, key) = world().await;
    let svc = ServiceBuilder::new().layer(AuthLayer::new(auth)).service(plain_service());
    for (name, value) in [
        ("x-api-key", vec![b'a'; 1 << 20]),
        ("authorization", [b"Bearer ".as_slice(), &vec![b'k'; 1 << 20]].concat()),
        ("x-api-key", [key.as_bytes(), &[0xff, 0xfe]].concat()),
        ("authorization", [b"Bearer ".as_slice(), "ключ".as_bytes()].concat()),
    ] {
        let req = Request::get("/api/public/agents/agent_1")
            .header(name, http::HeaderValue::from_bytes(&value).unwrap())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body = body_of(resp.into_body()).await;
        assert_eq!(
            body,
            br#"{"error":{"code":"INVALID_API_KEY","message":"The API key is not valid or has been deleted"}}"#
        );
    }
}

#[tokio::test]
async fn axum_extractor_and_extension_see_the_principal() {
    let (auth, key) = world().await;
    let app = Router::new()
        .route(
            "/api/public/agents/{id}",
            get(|Authenticated(p): Authenticated, axum::Extension(same): axum::Extension<Principal>| async move {
                assert_eq!(p.key_id(), same.key_id());
                p.key_name().to_owned()
            }),
        )
        .layer(AuthLayer::new(auth));
    let req = Request::get("/api/public/agents/agent_1").header("x-api-key", key).body(Body::empty()).unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_of(resp.into_body()).await, b"test");
}

#[tokio::test]
async fn extractor_without_the_layer_fails_closed() {
    let app = Router::new().route("/open", get(|Authenticated(p): Authenticated| async move { p.org().to_owned() }));
    let resp = app.oneshot(Request::get("/open").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], r#"Bearer realm="agentix""#);
}
