//! The admin API: orgs, agents, teams and keys, behind a bearer token. The
//! one response that ever holds a plaintext key is key creation (and roll).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agx_auth::{AgentRecord, KeyId, KeyMode, KeyRecord, KeySpec, Quota, Scope, StoreError, TeamRecord};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::errors::{ApiError, JsonBody};
use crate::state::AppState;
use agx_auth::rfc3339 as time;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/admin/orgs", post(create_org))
        .route("/api/admin/orgs/{org}/agents", post(create_agent))
        .route("/api/admin/orgs/{org}/teams", post(create_team))
        .route("/api/admin/orgs/{org}/keys", post(create_key).get(list_keys))
        .route("/api/admin/orgs/{org}/keys/{key}", delete(delete_key))
        .route("/api/admin/orgs/{org}/keys/{key}/roll", post(roll_key))
        .route("/api/admin/orgs/{org}/keys/{key}/usage", get(key_usage))
        .layer(axum::middleware::from_fn_with_state(state.clone(), require_admin))
        .with_state(state)
}

/// `Authorization: Bearer <admin token>`, compared in constant time; anything else is 401.
async fn require_admin(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    let expected = state.admin_token.as_bytes();
    let same = given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if same {
        next.run(req).await
    } else {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "A valid admin token is required").into_response()
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(what) => ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("No such {what}")),
        StoreError::Conflict(why) => ApiError::new(StatusCode::CONFLICT, "CONFLICT", why.into_owned()),
        StoreError::Unavailable(_) => ApiError::unavailable(),
    }
}

/// Ids appear in URL paths: letters, digits, `-` and `_` only.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn require_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() { Err(ApiError::invalid("name must not be empty")) } else { Ok(()) }
}

/// A readable id for things created without one: `org_` and 16 hex digits.
fn new_id(state: &AppState, prefix: &str) -> Result<String, ApiError> {
    let id = KeyId::generate(&state.rng).map_err(|_| ApiError::unavailable())?;
    Ok(format!("{prefix}_{:016x}", id.0 as u64))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    id: Option<String>,
    name: String,
}

async fn create_org(
    State(state): State<Arc<AppState>>,
    JsonBody(body): JsonBody<NewOrg>,
) -> Result<Response, ApiError> {
    require_name(&body.name)?;
    let id = match body.id {
        Some(id) if !valid_id(&id) => {
            return Err(ApiError::invalid("An org id is 1 to 64 letters, digits, '-' or '_'"));
        }
        Some(id) => id,
        None => new_id(&state, "org")?,
    };
    state.backend.admin.put_org(&id, &body.name).await.map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id, "name": body.name})).into_response()).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewAgent {
    id: Option<String>,
    name: String,
    #[serde(default)]
    allowed_domains: Vec<String>,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default = "yes")]
    public: bool,
}

fn yes() -> bool {
    true
}

fn agent_json(a: &AgentRecord) -> Value {
    json!({"id": a.id, "orgId": a.org, "name": a.name, "allowedDomains": a.allowed_domains, "active": a.active, "public": a.public})
}

async fn create_agent(
    State(state): State<Arc<AppState>>,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<NewAgent>,
) -> Result<Response, ApiError> {
    require_name(&body.name)?;
    if let Some(id) = &body.id
        && !valid_id(id)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_AGENT_ID",
            "An agent id is 1 to 64 letters, digits, '-' or '_'",
        ));
    }
    let agent = AgentRecord {
        id: match body.id {
            Some(id) => id,
            None => new_id(&state, "agent")?,
        },
        org,
        name: body.name,
        allowed_domains: body.allowed_domains,
        active: body.active,
        public: body.public,
    };
    state.backend.admin.put_agent(agent.clone()).await.map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(agent_json(&agent))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewTeam {
    id: Option<String>,
    name: String,
    agent_ids: Vec<String>,
}

async fn create_team(
    State(state): State<Arc<AppState>>,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<NewTeam>,
) -> Result<Response, ApiError> {
    require_name(&body.name)?;
    if let Some(id) = &body.id
        && !valid_id(id)
    {
        return Err(ApiError::invalid("A team id is 1 to 64 letters, digits, '-' or '_'"));
    }
    let team = TeamRecord {
        id: match body.id {
            Some(id) => id,
            None => new_id(&state, "team")?,
        },
        org,
        name: body.name,
        agent_ids: body.agent_ids,
    };
    if let Some(agent) = team.repeated_agent() {
        return Err(ApiError::invalid(format!("agentIds lists {agent} twice")));
    }
    state.backend.admin.put_team(team.clone()).await.map_err(store_error)?;
    let body = json!({"id": team.id, "orgId": team.org, "name": team.name, "agentIds": team.agent_ids});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewKey {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    expires_at: Option<String>,
    mode: Option<String>,
    #[serde(default)]
    rate_limits: BTreeMap<String, u32>,
}

fn key_json(r: &KeyRecord) -> Value {
    json!({
        "id": r.id.to_string(),
        "name": r.name,
        "scopes": r.scopes.iter().map(Scope::as_str).collect::<Vec<_>>(),
        "mode": r.mode.as_str(),
        "prefix": r.prefix,
        "createdAt": time::format(r.created_at),
        "expiresAt": r.expires_at.map(time::format),
    })
}

fn with_plaintext(mut v: Value, key: &agx_auth::ApiKey) -> Value {
    v["key"] = Value::String(key.expose_secret().to_owned());
    v
}

async fn create_key(
    State(state): State<Arc<AppState>>,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<NewKey>,
) -> Result<Response, ApiError> {
    require_name(&body.name)?;
    let known: Vec<&str> = state.auth.routes().scopes().map(Scope::as_str).collect();
    if let Some(unknown) = body.scopes.iter().find(|s| !known.contains(&s.as_str())) {
        return Err(ApiError::invalid(format!("unknown scope {unknown:?}; known scopes: {}", known.join(", "))));
    }
    let mode = match body.mode.as_deref() {
        None => KeyMode::Live,
        Some(m) => KeyMode::parse(m).ok_or_else(|| ApiError::invalid("mode must be \"live\" or \"test\""))?,
    };
    let mut spec = KeySpec::new(org, body.name).scopes(body.scopes.into_iter().map(Scope::new)).mode(mode);
    if let Some(at) = body.expires_at {
        spec = spec.expires_at(time::parse(&at).map_err(ApiError::invalid)?);
    }
    for (class, n) in body.rate_limits {
        if !state.auth.routes().classes().any(|c| c.as_str() == class) {
            return Err(ApiError::invalid(format!("unknown endpoint class {class:?}")));
        }
        let quota = Quota::try_per_minute(n).ok_or_else(|| ApiError::invalid("a rate limit must be at least 1"))?;
        spec = spec.rate_limit(class, quota);
    }
    let (key, record) = state.auth.issue_key(spec).await.map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(with_plaintext(key_json(&record), &key))).into_response())
}

async fn list_keys(State(state): State<Arc<AppState>>, Path(org): Path<String>) -> Result<Response, ApiError> {
    // An empty list would say the org exists and has no keys.
    if state.backend.admin.org(&org).await.map_err(store_error)?.is_none() {
        return Err(store_error(StoreError::NotFound("organization".into())));
    }
    let keys = state.backend.keys.list(&org).await.map_err(store_error)?;
    let ids: Vec<KeyId> = keys.iter().map(|r| r.id).collect();
    let last_used = state.backend.last_used(&org, &ids).await.map_err(store_error)?;
    let body: Vec<Value> = keys
        .iter()
        .map(|r| {
            let mut v = key_json(r);
            v["lastUsedAt"] = last_used.get(&r.id).map_or(Value::Null, |t| Value::String(time::format(*t)));
            v
        })
        .collect();
    Ok(Json(body).into_response())
}

fn key_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "KEY_NOT_FOUND", "No such key")
}

fn key_id(text: &str) -> Result<KeyId, ApiError> {
    text.parse().map_err(|_| key_not_found())
}

async fn delete_key(
    State(state): State<Arc<AppState>>,
    Path((org, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    if state.auth.delete_key(&org, key_id(&key)?).await.map_err(store_error)? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(key_not_found())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Roll {
    grace_period_seconds: u64,
}

async fn roll_key(
    State(state): State<Arc<AppState>>,
    Path((org, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<Roll>,
) -> Result<Response, ApiError> {
    // At most ten years: longer periods overflow timestamp conversions.
    if body.grace_period_seconds > 10 * 365 * 86_400 {
        return Err(ApiError::invalid("gracePeriodSeconds must be at most ten years"));
    }
    let grace = Duration::from_secs(body.grace_period_seconds);
    match state.auth.roll_key(&org, key_id(&key)?, grace).await.map_err(store_error)? {
        Some((key, record)) => Ok((StatusCode::CREATED, Json(with_plaintext(key_json(&record), &key))).into_response()),
        None => Err(key_not_found()),
    }
}

async fn key_usage(
    State(state): State<Arc<AppState>>,
    Path((org, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = key_id(&key)?;
    if state.backend.keys.get(&org, id).await.map_err(store_error)?.is_none() {
        return Err(key_not_found());
    }
    let (days, last_used) = state.backend.usage_of(id).await.map_err(store_error)?;
    let days: Vec<Value> = days
        .into_iter()
        .map(|(day, class, requests)| {
            let date = time::format(std::time::UNIX_EPOCH + Duration::from_secs(u64::from(day) * 86_400));
            json!({"day": &date[..10], "class": class, "requests": requests})
        })
        .collect();
    let last_used = last_used.map(time::format);
    Ok(Json(json!({"keyId": id.to_string(), "lastUsedAt": last_used, "usage": days})).into_response())
}
