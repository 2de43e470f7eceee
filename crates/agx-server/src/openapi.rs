//! The OpenAPI 3.1 document, served at `/openapi.json`, generated: the paths
//! come from the two route tables (the core's for the public API,
//! [`admin::ROUTES`] for the admin API), the bodies' schemas from the types
//! in `schema.rs` through `utoipa`, and the error codes from the error
//! tables. Nothing here is a list of routes.

use agx_auth::{
    AGENT_PARAM, AuthError, KeyId, KeyMode, ROUTABLE_ID_PATTERN, ResourceKind, RouteInfo, Routes, TEAM_PARAM, ops,
};
use http::Method;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApiBuilder, PathItem, PathsBuilder, Ref, RefOr, Required,
    ResponseBuilder,
};

use crate::admin::MAX_QUOTA;
use crate::admin::{self, AdminRoute};
use crate::dashboard::access::SESSION_COOKIE;
use crate::input::{
    HOST_PATTERN, MAX_LIST, MAX_MESSAGE_CHARS, MAX_MESSAGES, MAX_NAME_CHARS, MAX_PAGE, MAX_SESSION_CHARS, NAME_PATTERN,
    SESSION_PATTERN, TEXT_PATTERN,
};
use crate::schema::{
    Agent, AgentConfig, AgentPatch, AuditEvent, AuditEvents, Budget, ChatRequest, ConversationPatch, ConversationView,
    DashboardToken, ErrorEnvelope, Key, KeyPatch, LeakReport, LeakResult, NewAgent, NewDashboardToken, NewKey, NewOrg,
    NewTeam, Org, Roll, Team, Usage, Verdict, VerifiedPrincipal, VerifyCall, Widget,
};

const BEARER: &str = "bearerAuth";
const API_KEY: &str = "apiKeyHeader";
const ADMIN: &str = "adminToken";
const SESSION: &str = "dashboardSession";
const CSRF: &str = "csrfToken";

/// The document for a server judging with `routes`, whose operations it
/// serves itself when `public` (the Agentix table; a host's table has its
/// handlers elsewhere, and only its vocabulary is written here).
pub fn document(routes: &Routes, public: bool) -> Value {
    let mut paths = PathsBuilder::new();
    for route in routes.iter().filter(|_| public) {
        paths = paths.path(route.pattern(), PathItem::new(http_method(route.method()), public_operation(&route)));
    }
    paths = paths.path(crate::verify::ROUTE, PathItem::new(HttpMethod::Post, verify_operation()));
    for route in &admin::ROUTES {
        paths = paths.path(route.path, PathItem::new(http_method(&route.method), admin_operation(route)));
    }
    let doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("agx-server")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("The Agentix Public API behind agx-auth, and the admin API for its keys."))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components()))
        .build();
    let mut doc = serde_json::to_value(&doc).unwrap_or_else(|_| json!({}));
    apply_rules(&mut doc, routes);
    doc
}

fn http_method(m: &Method) -> HttpMethod {
    match *m {
        Method::POST => HttpMethod::Post,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        Method::PUT => HttpMethod::Put,
        Method::HEAD => HttpMethod::Head,
        Method::OPTIONS => HttpMethod::Options,
        _ => HttpMethod::Get,
    }
}

/// What the table does not say about a public operation: its prose, body
/// and answer.
struct PublicDoc {
    summary: &'static str,
    body: Option<&'static str>,
    ok: (&'static str, Option<&'static str>),
}

fn public_doc(operation: Option<&str>) -> PublicDoc {
    let doc = |summary, body, ok| PublicDoc { summary, body, ok };
    match operation {
        Some(ops::AGENT_CHAT) => doc(
            "Chat with an agent; the answer is streamed as text",
            Some("ChatRequest"),
            ("The answer, streamed (chunked)", None),
        ),
        Some(ops::TEAM_CHAT) => doc("Chat with a team", Some("ChatRequest"), ("The answer, streamed (chunked)", None)),
        Some(ops::AGENT_CONFIG) => doc("The agent's configuration", None, ("The configuration", Some("AgentConfig"))),
        Some(ops::AGENT_WIDGET) => doc("The agent's widget settings", None, ("The settings", Some("Widget"))),
        Some(ops::GET_CONVERSATION) => {
            doc("A conversation, one page of messages at a time", None, ("The conversation", Some("ConversationView")))
        }
        Some(ops::PATCH_CONVERSATION) => doc(
            "Merge into a conversation's metadata",
            Some("ConversationPatch"),
            ("The conversation", Some("ConversationView")),
        ),
        _ => doc("A route of the host application", None, ("The answer", None)),
    }
}

fn json_ref(name: &str) -> ContentBuilder {
    ContentBuilder::new().schema(Some(Ref::from_schema_name(name)))
}

fn string_schema(pattern: &str) -> Schema {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)).build().into()
}

/// An optional whole number in the query, from `min` to `max`.
fn query_param(name: &str, min: u64, max: u64) -> utoipa::openapi::path::Parameter {
    let schema = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(min as f64)).maximum(Some(max as f64));
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .schema(Some(schema))
        .build()
}

fn path_param(name: &str, pattern: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(string_schema(pattern)))
        .build()
}

/// The error answers of a route, each with the codes it can carry.
fn error_response(codes: &[&str]) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(format!("Error: {}", codes.join(", ")))
        .content("application/json", json_ref("ErrorEnvelope").build())
        .build()
}

/// The auth layer's codes by status, for a route naming `kind` (a declared
/// route, so never the core's refusal of an undeclared one).
fn auth_codes(status: u16, kind: ResourceKind) -> Vec<&'static str> {
    let undeclared = AuthError::RouteNotFound.doc();
    AuthError::all_docs()
        .iter()
        .filter(|d| d.status.as_u16() == status && !std::ptr::eq(**d, undeclared))
        .map(|d| d.code)
        .filter(|c| match kind {
            ResourceKind::Agent => *c != "TEAM_NOT_FOUND",
            ResourceKind::Team => {
                !matches!(*c, "AGENT_NOT_FOUND" | "AGENT_INACTIVE" | "AGENT_NOT_PUBLIC" | "DOMAIN_NOT_ALLOWED")
            }
            ResourceKind::None => {
                !c.starts_with("AGENT") && !c.starts_with("TEAM") && *c != "ORG_MISMATCH" && *c != "DOMAIN_NOT_ALLOWED"
            }
        })
        .collect()
}

fn public_operation(route: &RouteInfo<'_>) -> utoipa::openapi::path::Operation {
    let doc = public_doc(route.operation());
    let kind = route.resource_kind();
    let mut op = OperationBuilder::new()
        .operation_id(route.operation())
        .summary(Some(format!(
            "{} (scope {}, rate-limit class {})",
            doc.summary,
            route.scope(),
            route.class().as_str()
        )))
        .tag("public")
        .security(SecurityRequirement::new::<_, [&str; 0], &str>(BEARER, []))
        .security(SecurityRequirement::new::<_, [&str; 0], &str>(API_KEY, []));
    for name in route.params() {
        let pattern = match name {
            AGENT_PARAM | TEAM_PARAM => ROUTABLE_ID_PATTERN,
            _ => SESSION_PATTERN,
        };
        op = op.parameter(path_param(name, pattern));
    }
    if route.operation() == Some(ops::GET_CONVERSATION) {
        for (name, min, max) in [("limit", 1, MAX_PAGE), ("offset", 0, MAX_MESSAGES)] {
            op = op.parameter(query_param(name, min as u64, max as u64));
        }
    }
    let mut bad_request = vec!["INVALID_REQUEST_DATA"];
    if let Some(body) = doc.body {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", json_ref(body).build())
                .build(),
        ));
        bad_request.push("INVALID_JSON");
    }
    let ok = match doc.ok.1 {
        Some(schema) => {
            ResponseBuilder::new().description(doc.ok.0).content("application/json", json_ref(schema).build())
        }
        None => ResponseBuilder::new().description(doc.ok.0).content(
            "text/plain",
            ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::String))).build(),
        ),
    };
    let mut not_found = auth_codes(404, kind);
    not_found.push("NOT_FOUND");
    if route.params().any(|p| p == "sessionId") {
        not_found.push("CONVERSATION_NOT_FOUND");
    }
    op = op
        .response("200", ok.build())
        .response("400", error_response(&bad_request))
        .response("401", error_response(&auth_codes(401, kind)))
        .response("403", error_response(&auth_codes(403, kind)))
        .response("404", error_response(&not_found))
        .response("405", error_response(&["METHOD_NOT_ALLOWED"]))
        .response("429", error_response(&auth_codes(429, kind)))
        .response("503", error_response(&["AUTH_UNAVAILABLE", "SERVICE_UNAVAILABLE"]));
    if doc.body.is_some() {
        op = op.response("413", error_response(&["PAYLOAD_TOO_LARGE"]));
    }
    op.build()
}

fn verify_operation() -> utoipa::openapi::path::Operation {
    OperationBuilder::new()
        .operation_id(Some("verifyKey"))
        .summary(Some("Judge a key for a request or a permission, as the public API would (spends the same budget)"))
        .tag("verify")
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", json_ref("VerifyCall").build())
                .build(),
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The verdict, allowed or refused: admit only when `allowed` is true")
                .content("application/json", json_ref("Verdict").build())
                .build(),
        )
        .response("400", error_response(&["INVALID_JSON", "INVALID_REQUEST_DATA"]))
        .response("405", error_response(&["METHOD_NOT_ALLOWED"]))
        .response("413", error_response(&["PAYLOAD_TOO_LARGE"]))
        .response("503", error_response(&["AUTH_UNAVAILABLE"]))
        .build()
}

fn admin_operation(route: &AdminRoute) -> utoipa::openapi::path::Operation {
    let (body, (ok_status, ok_schema)) = (route.body, route.ok);
    let mut op = OperationBuilder::new()
        .operation_id(Some(route.operation))
        .summary(Some(route.summary))
        .tag("admin")
        .security(SecurityRequirement::new::<_, [&str; 0], &str>(ADMIN, []))
        // The dashboard's page script: its session cookie and the session's CSRF token, both.
        .security(SecurityRequirement::new::<_, [&str; 0], &str>(SESSION, []).add::<_, [&str; 0], &str>(CSRF, []));
    for segment in route.path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let pattern = if name == "keyId" { KeyId::PATTERN } else { ROUTABLE_ID_PATTERN };
            op = op.parameter(path_param(name, pattern));
        }
    }
    for &(name, min, max) in route.query {
        op = op.parameter(query_param(name, min, max));
    }
    let mut bad_request = vec!["INVALID_REQUEST_DATA"];
    if let Some(body) = body {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", json_ref(body).build())
                .build(),
        ));
        bad_request.extend(["INVALID_JSON", "INVALID_AGENT_ID"]);
        op = op.response("413", error_response(&["PAYLOAD_TOO_LARGE"])).response("409", error_response(&["CONFLICT"]));
    }
    let ok = ResponseBuilder::new().description("Done");
    let ok = match ok_schema {
        Some(schema) => ok.content("application/json", json_ref(schema).build()),
        None => ok,
    };
    op.response(ok_status, ok.build())
        .response("400", error_response(&bad_request))
        .response("401", error_response(&["UNAUTHORIZED"]))
        .response("403", error_response(&["CSRF_TOKEN_INVALID", "FORBIDDEN"]))
        .response("404", error_response(&["NOT_FOUND", "KEY_NOT_FOUND"]))
        .response("429", error_response(&["TOO_MANY_ATTEMPTS"]))
        .response("405", error_response(&["METHOD_NOT_ALLOWED"]))
        .response("503", error_response(&["SERVICE_UNAVAILABLE"]))
        .build()
}

fn components() -> utoipa::openapi::Components {
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    fn add<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
    }
    add::<ChatRequest>(&mut schemas);
    add::<ConversationPatch>(&mut schemas);
    add::<AgentConfig>(&mut schemas);
    add::<Widget>(&mut schemas);
    add::<ConversationView>(&mut schemas);
    add::<ErrorEnvelope>(&mut schemas);
    add::<NewOrg>(&mut schemas);
    add::<Org>(&mut schemas);
    add::<NewAgent>(&mut schemas);
    add::<Agent>(&mut schemas);
    add::<NewTeam>(&mut schemas);
    add::<Team>(&mut schemas);
    add::<NewKey>(&mut schemas);
    add::<KeyPatch>(&mut schemas);
    add::<Key>(&mut schemas);
    add::<Roll>(&mut schemas);
    add::<LeakReport>(&mut schemas);
    add::<LeakResult>(&mut schemas);
    add::<Usage>(&mut schemas);
    add::<AgentPatch>(&mut schemas);
    add::<NewDashboardToken>(&mut schemas);
    add::<DashboardToken>(&mut schemas);
    add::<AuditEvent>(&mut schemas);
    add::<AuditEvents>(&mut schemas);
    add::<VerifyCall>(&mut schemas);
    add::<Verdict>(&mut schemas);
    add::<VerifiedPrincipal>(&mut schemas);
    add::<Budget>(&mut schemas);
    for item in ["Key", "Org", "Agent", "Team", "DashboardToken"] {
        let list = utoipa::openapi::schema::ArrayBuilder::new().items(Ref::from_schema_name(item)).build();
        schemas.push((format!("{item}List"), RefOr::T(list.into())));
    }
    ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("agx_live_…").build()),
        )
        .security_scheme(API_KEY, SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))))
        .security_scheme(
            ADMIN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token (every organization) or an org dashboard token (agxd_…, one org)",
                    ))
                    .build(),
            ),
        )
        .security_scheme(SESSION, SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))))
        .security_scheme(CSRF, SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-CSRF-Token"))))
        .build()
}

/// Writes the server's input rules (`input.rs`) and the route table's
/// vocabularies (scopes, classes, key modes) into the schemas, so that the
/// document says what the server checks, and each rule is written once.
fn apply_rules(doc: &mut Value, routes: &Routes) {
    let text = |max: usize| json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": TEXT_PATTERN});
    let name = json!({"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": NAME_PATTERN});
    let id = json!({"type": "string", "pattern": ROUTABLE_ID_PATTERN});
    let scopes: Vec<&str> = routes.scopes().map(|s| s.as_str()).collect();
    let mut classes: Vec<&str> = routes.classes().map(|c| c.as_str()).collect();
    classes.sort_unstable();
    let domains = json!({"type": "array", "maxItems": MAX_LIST, "items": {"type": "string", "maxLength": 253, "pattern": HOST_PATTERN}});
    let modes: Vec<&str> = [KeyMode::Live, KeyMode::Test].iter().map(|m| m.as_str()).collect();
    let rules = [
        ("ChatRequest", "message", text(MAX_MESSAGE_CHARS)),
        (
            "ChatRequest",
            "sessionId",
            json!({"type": "string", "minLength": 1, "maxLength": MAX_SESSION_CHARS, "pattern": SESSION_PATTERN}),
        ),
        ("ChatRequest", "visitorId", text(MAX_NAME_CHARS)),
        ("ChatRequest", "visitorEmail", text(MAX_NAME_CHARS)),
        ("ChatRequest", "visitorName", text(MAX_NAME_CHARS)),
        ("NewOrg", "name", name.clone()),
        ("NewOrg", "id", id.clone()),
        ("NewAgent", "name", name.clone()),
        ("NewAgent", "id", id.clone()),
        ("NewAgent", "allowedDomains", domains.clone()),
        ("AgentPatch", "name", name.clone()),
        ("AgentPatch", "allowedDomains", domains),
        ("NewDashboardToken", "name", name.clone()),
        ("LeakReport", "foundIn", text(crate::input::MAX_FOUND_IN)),
        ("NewTeam", "name", name.clone()),
        ("NewTeam", "id", id.clone()),
        ("NewTeam", "agentIds", json!({"type": "array", "maxItems": MAX_LIST, "uniqueItems": true, "items": id})),
        ("NewKey", "name", name.clone()),
        (
            "NewKey",
            "scopes",
            json!({"type": "array", "uniqueItems": true, "items": {"type": "string", "enum": scopes}}),
        ),
        ("NewKey", "mode", json!({"type": ["string", "null"], "enum": [modes[0], modes[1], null]})),
        (
            "NewKey",
            "allowedNetworks",
            json!({"type": "array", "maxItems": MAX_LIST, "items": {"type": "string", "pattern": crate::input::network_pattern()}}),
        ),
        (
            "NewKey",
            "rateLimits",
            json!({
                "type": "object",
                "propertyNames": {"enum": classes},
                "additionalProperties": {"type": "integer", "minimum": 1, "maximum": MAX_QUOTA},
            }),
        ),
    ];
    let nullable_enum = |names: &[&str]| {
        let mut values: Vec<Value> = names.iter().map(|n| json!(n)).collect();
        values.push(Value::Null);
        json!({"type": ["string", "null"], "enum": values})
    };
    // What a patch replaces is checked as at creation.
    let patched: Vec<_> = rules
        .iter()
        .filter(|(schema, field, _)| *schema == "NewKey" && matches!(*field, "allowedNetworks" | "rateLimits"))
        .map(|(_, field, rule)| ("KeyPatch", *field, rule.clone()))
        .collect();
    let rules = rules.into_iter().chain(patched).chain([
        ("VerifyCall", "scope", nullable_enum(&scopes)),
        ("VerifyCall", "class", nullable_enum(&classes)),
        ("VerifyCall", "method", json!({"type": ["string", "null"], "pattern": METHOD_PATTERN})),
        ("VerifyCall", "path", json!({"type": ["string", "null"], "pattern": PATH_PATTERN})),
        (
            "VerifyCall",
            "clientAddress",
            json!({"type": ["string", "null"], "pattern": crate::input::address_pattern()}),
        ),
    ]);
    for (schema, field, rule) in rules {
        let slot = &mut doc["components"]["schemas"][schema]["properties"][field];
        // An optional field stays optional: `null` is still accepted where serde takes an Option.
        let nullable = slot["type"].as_array().is_some_and(|t| t.iter().any(|t| t == "null"));
        *slot = rule;
        if nullable && let Some(kind) = slot["type"].as_str() {
            slot["type"] = json!([kind, "null"]);
        }
    }
    // A verify call names a request or a permission, never both; `null`
    // reads as absent.
    let mut pairs: Vec<Value> = Vec::new();
    for route in routes.iter() {
        let pair = json!({"properties": {"scope": {"const": route.scope().as_str()}, "class": {"const": route.class().as_str()}}});
        if !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    let absent = json!({"type": "null"});
    let given = |pattern: Option<&str>| match pattern {
        Some(p) => json!({"type": "string", "pattern": p}),
        None => json!({"type": "string"}),
    };
    doc["components"]["schemas"]["VerifyCall"]["oneOf"] = json!([
        {
            "required": ["method", "path"],
            "properties": {"method": given(Some(METHOD_PATTERN)), "path": given(Some(PATH_PATTERN)),
                           "scope": absent, "class": absent, "agent": absent, "team": absent},
        },
        {
            "required": ["scope", "class"],
            "properties": {"scope": given(None), "class": given(None), "method": absent, "path": absent},
            "not": {"required": ["agent", "team"], "properties": {"agent": given(None), "team": given(None)}},
            // Only a scope and class that some route requires together.
            "anyOf": pairs,
        },
    ]);
}

/// An HTTP method token (RFC 9110 `tchar`s).
const METHOD_PATTERN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
/// An origin-form request target: `/`, then visible ASCII.
const PATH_PATTERN: &str = "^/[!-~]*$";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_route_is_documented_with_its_parameters() {
        let routes = Routes::agentix();
        let doc = document(&routes, true);
        let mut n = 0;
        for route in routes.iter() {
            let method = route.method().as_str().to_ascii_lowercase();
            let op = &doc["paths"][route.pattern()][&method];
            assert!(op.is_object(), "{method} {} is not documented", route.pattern());
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(params, route.params().collect::<Vec<_>>());
            n += 1;
        }
        for route in &admin::ROUTES {
            let method = route.method.as_str().to_ascii_lowercase();
            assert!(doc["paths"][route.path][&method].is_object(), "{method} {}", route.path);
            n += 1;
        }
        assert!(doc["paths"][crate::verify::ROUTE]["post"].is_object());
        n += 1;
        let documented: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(documented, n);
        assert_eq!(doc["openapi"], "3.1.0");
        let chat = &doc["paths"]["/api/public/agents/{agentId}/chat"]["post"];
        assert_eq!(chat["requestBody"]["required"], true);
        assert_eq!(doc["components"]["schemas"]["ChatRequest"]["additionalProperties"], false);
        assert_eq!(
            doc["components"]["schemas"]["NewKey"]["properties"]["scopes"]["items"]["enum"],
            json!(["chat", "config", "conversations"])
        );
        assert!(doc["components"]["securitySchemes"][API_KEY].is_object());
    }
}
