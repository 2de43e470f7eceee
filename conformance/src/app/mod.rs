//! The app every adapter serves under test: the Agentix routes and one host
//! route, each answering with the principal it was given (as
//! `application/json`), and CORS preflights answered with 200. The echo is
//! framework-free so every adapter's body is the same bytes; each submodule
//! builds the same app in its framework and serves it on an ephemeral
//! loopback port.

pub mod actix;
pub mod axum;
pub mod poem;

use agx_auth::{Principal, Routes};
use http::Method;

/// The declared routes grouped by pattern, in table order, with their
/// methods: every app routes from the authenticator's table, so an app and
/// the classifier cannot disagree about which paths exist.
pub fn paths(routes: &Routes) -> Vec<(String, Vec<Method>)> {
    let mut out: Vec<(String, Vec<Method>)> = Vec::new();
    for route in routes.iter() {
        match out.iter_mut().find(|(p, _)| p == route.pattern()) {
            Some((_, methods)) => methods.push(route.method().clone()),
            None => out.push((route.pattern().to_owned(), vec![route.method().clone()])),
        }
    }
    out
}

/// A route of the host application's that the route table does not declare.
pub const PING: &str = "/api/public/ping";
/// A host route that the stub route table declares (scope and class
/// `config`) and that names no agent: steps 5, 6, 6b and 8 do not apply.
pub const STATUS: &str = "/api/public/status";

/// `{"org":…,"keyName":…,"mode":…,"scopes":[…]}`
pub fn echo(principal: &Principal) -> String {
    let scopes: Vec<&str> = principal.scopes().iter().map(|s| s.as_str()).collect();
    echo_fields(principal.org(), principal.key_name(), principal.mode().as_str(), &scopes)
}

/// [`echo`] from the principal's parts, for an upstream that is told them
/// in headers by a gateway.
pub fn echo_fields(org: &str, key_name: &str, mode: &str, scopes: &[&str]) -> String {
    serde_json::json!({"org": org, "keyName": key_name, "mode": mode, "scopes": scopes}).to_string()
}
