//! The app every adapter serves under test: the Agentix routes and one host
//! route, each answering with the principal it was given (as
//! `application/json`), and CORS preflights answered with 204. The echo is
//! framework-free so every adapter's body is the same bytes; each submodule
//! builds the same app in its framework and serves it on an ephemeral
//! loopback port.

pub mod actix;
pub mod axum;
pub mod poem;

use agx_auth::Principal;

/// Paths the stub app serves, in the framework-neutral `{param}` syntax.
pub const CHAT: &str = "/api/public/agents/{agent_id}/chat";
pub const TEAM_CHAT: &str = "/api/public/teams/{team_id}/chat";
pub const AGENT: &str = "/api/public/agents/{agent_id}";
pub const WIDGET: &str = "/api/public/agents/{agent_id}/widget";
pub const CONVERSATION: &str = "/api/public/agents/{agent_id}/conversations/{session_id}";
/// A route of the host application's that the route table does not declare.
pub const PING: &str = "/api/public/ping";
/// A host route that the stub route table declares (scope and class
/// `config`) and that names no agent: steps 5, 6, 6b and 8 do not apply.
pub const STATUS: &str = "/api/public/status";

/// `{"org":…,"keyName":…,"mode":…,"scopes":[…]}`
pub fn echo(principal: &Principal) -> String {
    serde_json::json!({
        "org": principal.org(),
        "keyName": principal.key_name(),
        "mode": principal.mode().as_str(),
        "scopes": principal.scopes().iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    })
    .to_string()
}
