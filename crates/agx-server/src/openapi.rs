//! The OpenAPI 3.1 document of the public and admin APIs, served at
//! `/openapi.json`. Written by hand: the API is small. A test checks it
//! against the list of routed paths and methods.

use serde_json::{Value, json};

fn error_ref() -> Value {
    json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn op(summary: &str, security: &str, ok: (&str, &str)) -> Value {
    json!({
        "summary": summary,
        "security": [{security: []}],
        "responses": {
            ok.0: {"description": ok.1},
            "400": error_ref(), "401": error_ref(), "403": error_ref(), "404": error_ref(),
            "429": error_ref(), "503": error_ref(),
        },
    })
}

pub fn document() -> Value {
    let summaries: [(&str, &str, &str, (&str, &str)); 14] = [
        (
            "/api/public/agents/{agentId}/chat",
            "post",
            "Chat with an agent (scope chat); text/plain, chunked",
            ("200", "The answer, streamed"),
        ),
        ("/api/public/teams/{teamId}/chat", "post", "Chat with a team (scope chat)", ("200", "The answer, streamed")),
        ("/api/public/agents/{agentId}", "get", "Agent configuration (scope config)", ("200", "The configuration")),
        ("/api/public/agents/{agentId}/widget", "get", "Widget settings (scope config)", ("200", "The settings")),
        (
            "/api/public/agents/{agentId}/conversations/{sessionId}",
            "get",
            "A conversation (scope conversations); limit ≤ 100, offset",
            ("200", "The conversation"),
        ),
        (
            "/api/public/agents/{agentId}/conversations/{sessionId}",
            "patch",
            "Merge a conversation's metadata (scope conversations)",
            ("200", "The conversation"),
        ),
        ("/api/admin/orgs", "post", "Create an organization", ("201", "Created")),
        ("/api/admin/orgs/{orgId}/agents", "post", "Create an agent", ("201", "Created")),
        ("/api/admin/orgs/{orgId}/teams", "post", "Create a team", ("201", "Created")),
        (
            "/api/admin/orgs/{orgId}/keys",
            "post",
            "Create a key; the only response that holds the key",
            ("201", "Created"),
        ),
        ("/api/admin/orgs/{orgId}/keys", "get", "List keys (never the keys themselves)", ("200", "The keys")),
        ("/api/admin/orgs/{orgId}/keys/{keyId}", "delete", "Delete a key", ("204", "Deleted")),
        (
            "/api/admin/orgs/{orgId}/keys/{keyId}/roll",
            "post",
            "Roll a key: a new key now, the old one after a grace period",
            ("201", "The new key"),
        ),
        (
            "/api/admin/orgs/{orgId}/keys/{keyId}/usage",
            "get",
            "A key's usage: requests per day and endpoint class, and its last use",
            ("200", "The usage"),
        ),
    ];
    let mut paths = serde_json::Map::new();
    for (path, method, summary, ok) in summaries {
        let security = if path.starts_with("/api/admin") { "adminToken" } else { "apiKey" };
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[method] = op(summary, security, ok);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Agentix Public API (agx-server)", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "agx_live_… or agx_test_…, as Authorization: Bearer or X-API-Key"},
                "adminToken": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path the server routes, with its methods.
    const PATHS: [(&str, &[&str]); 12] = [
        ("/api/public/agents/{agentId}/chat", &["post"]),
        ("/api/public/teams/{teamId}/chat", &["post"]),
        ("/api/public/agents/{agentId}", &["get"]),
        ("/api/public/agents/{agentId}/widget", &["get"]),
        ("/api/public/agents/{agentId}/conversations/{sessionId}", &["get", "patch"]),
        ("/api/admin/orgs", &["post"]),
        ("/api/admin/orgs/{orgId}/agents", &["post"]),
        ("/api/admin/orgs/{orgId}/teams", &["post"]),
        ("/api/admin/orgs/{orgId}/keys", &["post", "get"]),
        ("/api/admin/orgs/{orgId}/keys/{keyId}", &["delete"]),
        ("/api/admin/orgs/{orgId}/keys/{keyId}/roll", &["post"]),
        ("/api/admin/orgs/{orgId}/keys/{keyId}/usage", &["get"]),
    ];

    #[test]
    fn every_routed_path_and_method_is_documented() {
        let doc = document();
        for (path, methods) in PATHS {
            for method in methods {
                assert!(doc["paths"][path][method].is_object(), "{method} {path} is not documented");
            }
        }
        assert_eq!(doc["paths"].as_object().map(|p| p.len()), Some(PATHS.len()));
    }
}
