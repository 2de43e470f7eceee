//! A protected Agentix-style API on the in-memory store, in one command:
//!
//! ```text
//! cargo run -p agx-auth-axum --example demo
//! ```
//!
//! It seeds an org, an agent, a team and a key with every scope, and prints
//! the key and a `curl` line that works as printed. (The full reference
//! server with its admin API is `agx-server`.)

use std::sync::Arc;

use agx_auth::{AgentRecord, Authenticator, KeySpec, MemoryStore, TeamRecord};
use agx_auth_axum::{AuthLayer, Authenticated};
use axum::Router;
use axum::routing::{get, post};

async fn whoami(Authenticated(principal): Authenticated) -> String {
    format!(
        "hello from agx-auth: org {}, key {} ({}), mode {}\n",
        principal.org(),
        principal.key_name(),
        principal.key_id(),
        principal.mode().as_str()
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let store = Arc::new(MemoryStore::new());
    store.insert_org("demo-org", "Demo Org");
    store.insert_agent(AgentRecord::new("demo-agent", "demo-org", "Demo Agent"));
    store.insert_team(TeamRecord {
        id: "demo-team".into(),
        org: "demo-org".into(),
        name: "Demo Team".into(),
        agent_ids: vec!["demo-agent".into()],
    });
    let auth = Arc::new(Authenticator::builder(store.clone(), store).build());
    let (key, record) =
        auth.issue_key(KeySpec::new("demo-org", "demo key")).await.map_err(|e| std::io::Error::other(e.to_string()))?;

    let app = Router::new()
        .route("/api/public/agents/{agent_id}/chat", post(whoami))
        .route("/api/public/teams/{team_id}/chat", post(whoami))
        .route("/api/public/agents/{agent_id}", get(whoami))
        .route("/api/public/agents/{agent_id}/widget", get(whoami))
        .route("/api/public/agents/{agent_id}/conversations/{session_id}", get(whoami).patch(whoami))
        .layer(AuthLayer::new(auth));

    let bind = std::env::var("AGX_BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let addr = listener.local_addr()?;
    // The one time this key is shown: it is the demo's own, made at start.
    println!("demo key ({}, every scope): {}", record.prefix, key.expose_secret());
    println!(
        "try:\n  curl -i -X POST -H 'Authorization: Bearer {}' http://{addr}/api/public/agents/demo-agent/chat",
        key.expose_secret()
    );
    axum::serve(listener, app).await
}
