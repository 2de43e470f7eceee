//! The extractors without the middleware fail closed, and with it see the
//! same principal as `web::ReqData`.

use std::sync::Arc;

use actix_web::{App, test, web};
use agx_auth::{AgentRecord, Authenticator, KeySpec, MemoryStore, Principal};
use agx_auth_actix::{AgxAuth, Authenticated};

#[actix_web::test]
async fn extractor_without_middleware_is_a_401() {
    let app = test::init_service(
        App::new().route("/open", web::get().to(|Authenticated(p): Authenticated| async move { p.org().to_owned() })),
    )
    .await;
    let resp = test::TestRequest::get().uri("/open").send_request(&app).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers().get("www-authenticate").unwrap(), r#"Bearer realm="agentix""#);
    let body = test::read_body(resp).await;
    assert_eq!(&body[..], br#"{"error":{"code":"MISSING_API_KEY","message":"No API key provided in the request"}}"#);
}

#[actix_web::test]
async fn extractor_and_req_data_agree() {
    let store = Arc::new(MemoryStore::new());
    store.insert_org("org_1", "Acme");
    store.insert_agent(AgentRecord::new("agent_1", "org_1", "Support"));
    let auth = Arc::new(Authenticator::builder(store.clone(), store).build());
    let (key, _) = auth.issue_key(KeySpec::new("org_1", "k")).await.unwrap();
    let app = test::init_service(App::new().wrap(AgxAuth::new(auth)).route(
        "/api/public/agents/{id}",
        web::get().to(|Authenticated(p): Authenticated, same: web::ReqData<Principal>| async move {
            assert_eq!(p.key_id(), same.key_id());
            p.key_name().to_owned()
        }),
    ))
    .await;
    let resp = test::TestRequest::get()
        .uri("/api/public/agents/agent_1")
        .insert_header(("authorization", format!("Bearer {}", key.expose_secret())))
        .send_request(&app)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&test::read_body(resp).await[..], b"k");
}
