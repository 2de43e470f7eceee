//! The Agentix Public API (contract §7) behind the axum adapter. Every
//! request reaching a handler here has passed agx-auth; the handlers only do
//! the API's own work.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use agx_auth::{AgentRecord, Principal};
use agx_auth_axum::{AuthLayer, Authenticated};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::conversations::{Conversation, Conversations, Message, Turn};
use crate::errors::{ApiError, JsonBody, QueryParams};
use crate::state::AppState;
use agx_auth::rfc3339 as time;

const MAX_MESSAGE_LENGTH: usize = 4000;
const BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: Arc<AppState>, conversations: Conversations) -> Router {
    let api = Arc::new(Api { state: state.clone(), conversations });
    Router::new()
        .route("/api/public/agents/{agent}/chat", post(agent_chat).options(preflight))
        .route("/api/public/teams/{team}/chat", post(team_chat).options(preflight))
        .route("/api/public/agents/{agent}", get(agent_config).options(preflight))
        .route("/api/public/agents/{agent}/widget", get(widget).options(preflight))
        .route(
            "/api/public/agents/{agent}/conversations/{session}",
            get(conversation).patch(patch_conversation).options(preflight),
        )
        // Anything else under the public base still goes through the auth
        // layer (undeclared routes need a key), then answers 404.
        .route(
            "/api/public/{*rest}",
            any(|| async { ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "No such route") }),
        )
        .layer(AuthLayer::new(state.auth.clone()))
        .layer(axum::middleware::from_fn(allow_origin))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(api)
}

/// CORS preflights reach us without a key (the auth layer passes them
/// through). An agent's preflight is answered per its allowed domains; a
/// team has no domain list. A refused preflight is a 204 without CORS
/// headers, which the browser treats as a refusal.
async fn preflight(
    State(api): State<Arc<Api>>,
    Path(params): Path<HashMap<String, String>>,
    headers: http::HeaderMap,
) -> Response {
    let origin = headers.get(http::header::ORIGIN).cloned();
    let allowed = match (&origin, params.get("agent")) {
        (None, _) => false,
        (Some(o), Some(agent)) => match api.state.backend.directory.agent(agent).await {
            Ok(Some(a)) => a.allowed_domains.is_empty() || agx_auth::origin_allowed(o.as_bytes(), &a.allowed_domains),
            _ => false,
        },
        (Some(_), None) => true,
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let (true, Some(origin)) = (allowed, origin) {
        let h = response.headers_mut();
        h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(http::header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PATCH, OPTIONS"));
        h.insert(
            http::header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, x-api-key, content-type"),
        );
        h.insert(http::header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        h.insert(http::header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

/// Lets a browser page read the answer to its request (the auth layer has
/// already refused origins an agent does not allow), including the
/// conversation ids and the rate-limit fields.
async fn allow_origin(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let origin = req.headers().get(http::header::ORIGIN).cloned();
    let mut response = next.run(req).await;
    if let Some(origin) = origin
        && !response.headers().contains_key(http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
        && response.status() != StatusCode::NO_CONTENT
    {
        let h = response.headers_mut();
        h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-conversation-id, x-message-id, ratelimit, ratelimit-policy, retry-after"),
        );
        h.append(http::header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

struct Api {
    state: Arc<AppState>,
    conversations: Conversations,
}

impl Api {
    fn new_id(&self, prefix: &str) -> String {
        let n = agx_auth::KeyId::generate(&self.state.rng).map_or(0, |id| id.0 as u64);
        format!("{prefix}_{n:016x}")
    }

    async fn agent(&self, id: &str) -> Result<Arc<AgentRecord>, ApiError> {
        // The auth layer already found it; a race with a deletion reads as unavailable.
        self.state.backend.directory.agent(id).await.ok().flatten().ok_or_else(ApiError::unavailable)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatRequest {
    message: String,
    session_id: String,
    visitor_id: Option<String>,
    visitor_email: Option<String>,
    visitor_name: Option<String>,
    metadata: Option<Map<String, Value>>,
}

impl ChatRequest {
    fn validate(&self) -> Result<(), ApiError> {
        if self.message.trim().is_empty() {
            return Err(ApiError::invalid("message must not be empty"));
        }
        if self.message.chars().count() > MAX_MESSAGE_LENGTH {
            return Err(ApiError::invalid(format!("message is longer than {MAX_MESSAGE_LENGTH} characters")));
        }
        if self.session_id.is_empty() || self.session_id.len() > 128 {
            return Err(ApiError::invalid("sessionId must be 1 to 128 characters"));
        }
        let _ = (&self.visitor_id, &self.visitor_email);
        Ok(())
    }
}

/// The built-in agent: deterministic, so that tests and demos can rely on it.
fn reply(agent_name: &str, req: &ChatRequest) -> String {
    let greeting = req.visitor_name.as_deref().map_or_else(|| "Hello".to_owned(), |n| format!("Hello, {n}"));
    format!("{greeting}! This is {agent_name}. You said: \"{}\". How can I help further?", req.message.trim())
}

async fn chat(api: &Api, owner: String, owner_name: String, req: ChatRequest) -> Result<Response, ApiError> {
    let text = reply(&owner_name, &req);
    let now = SystemTime::now();
    let user = Message { id: api.new_id("msg"), role: "user".into(), content: req.message.clone(), at: now };
    let answer = Message { id: api.new_id("msg"), role: "assistant".into(), content: text.clone(), at: now };
    let message_id = answer.id.clone();
    let turn = Turn {
        owner,
        owner_name,
        session: req.session_id.clone(),
        new_id: api.new_id("conv"),
        messages: [user, answer],
        metadata: req.metadata,
    };
    let conversation_id = api.conversations.append(turn).await.map_err(internal)?;
    // Streamed word by word: no length is known up front, so the response is chunked.
    let words: Vec<Result<Bytes, Infallible>> =
        text.split_inclusive(' ').map(|w| Ok(Bytes::copy_from_slice(w.as_bytes()))).collect();
    let mut response = Response::new(Body::from_stream(futures_util::stream::iter(words)));
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    for (name, value) in [("x-conversation-id", conversation_id), ("x-message-id", message_id)] {
        if let Ok(v) = HeaderValue::try_from(value) {
            headers.insert(name, v);
        }
    }
    Ok(response)
}

/// A failure of ours: logged, and answered 500 `INTERNAL_ERROR` without detail.
fn internal(why: String) -> ApiError {
    tracing::error!(%why, "internal error");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "An internal error occurred")
}

async fn agent_chat(
    State(api): State<Arc<Api>>,
    Path(agent): Path<String>,
    Authenticated(_): Authenticated,
    JsonBody(req): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    req.validate()?;
    let record = api.agent(&agent).await?;
    chat(&api, agent, record.name.clone(), req).await
}

async fn team_chat(
    State(api): State<Arc<Api>>,
    Path(team): Path<String>,
    Authenticated(_): Authenticated,
    JsonBody(req): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    req.validate()?;
    let record = api.state.backend.directory.team(&team).await.ok().flatten().ok_or_else(ApiError::unavailable)?;
    // Agents and teams are separate namespaces: a team named like an agent
    // must not write into that agent's conversations. Ids never hold ':'.
    chat(&api, format!("team:{team}"), record.name.clone(), req).await
}

fn config_json(agent: &AgentRecord, principal: &Principal, rate_limit: u32) -> Value {
    let _ = principal;
    json!({
        "id": agent.id,
        "name": agent.name,
        "description": format!("{} answers questions for its organization.", agent.name),
        "welcomeMessage": format!("Hi! I'm {}. How can I help?", agent.name),
        "placeholderText": "Type your message…",
        "theme": {"primaryColor": "#4f46e5", "position": "bottom-right"},
        "features": {"streaming": true, "conversationHistory": true},
        "limits": {"maxMessageLength": MAX_MESSAGE_LENGTH, "rateLimitPerMinute": rate_limit},
    })
}

async fn agent_config(
    State(api): State<Arc<Api>>,
    Path(agent): Path<String>,
    Authenticated(principal): Authenticated,
) -> Result<Response, ApiError> {
    let record = api.agent(&agent).await?;
    let chat_quota = principal.record().quota_override(agx_auth::EndpointClass::CHAT).map_or(60, agx_auth::Quota::get);
    Ok(Json(config_json(&record, &principal, chat_quota)).into_response())
}

async fn widget(
    State(api): State<Arc<Api>>,
    Path(agent): Path<String>,
    Authenticated(_): Authenticated,
) -> Result<Response, ApiError> {
    let record = api.agent(&agent).await?;
    Ok(Json(json!({
        "agentId": record.id,
        "name": record.name,
        "welcomeMessage": format!("Hi! I'm {}. How can I help?", record.name),
        "placeholderText": "Type your message…",
        "theme": {"primaryColor": "#4f46e5", "position": "bottom-right"},
        "allowedDomains": record.allowed_domains,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

fn conversation_json(c: &Conversation, session: &str) -> Value {
    let messages: Vec<Value> = c
        .messages
        .iter()
        .map(|m| json!({"id": m.id, "role": m.role, "content": m.content, "timestamp": time::format(m.at)}))
        .collect();
    json!({
        "id": c.id,
        "sessionId": session,
        "agentId": c.agent_id,
        "agentName": c.agent_name,
        "messages": messages,
        "messageCount": c.message_count,
        "createdAt": time::format(c.created_at),
        "updatedAt": time::format(c.updated_at),
        "metadata": c.metadata,
    })
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "CONVERSATION_NOT_FOUND", "No conversation with this sessionId for this agent")
}

async fn conversation(
    State(api): State<Arc<Api>>,
    Path((agent, session)): Path<(String, String)>,
    QueryParams(page): QueryParams<Page>,
    Authenticated(_): Authenticated,
) -> Result<Response, ApiError> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 100"));
    }
    let c = api.conversations.get(&agent, &session, limit, page.offset.unwrap_or(0)).await.map_err(internal)?;
    Ok(Json(conversation_json(&c.ok_or_else(not_found)?, &session)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    metadata: Map<String, Value>,
}

async fn patch_conversation(
    State(api): State<Arc<Api>>,
    Path((agent, session)): Path<(String, String)>,
    Authenticated(_): Authenticated,
    JsonBody(patch): JsonBody<Patch>,
) -> Result<Response, ApiError> {
    if !api.conversations.merge_metadata(&agent, &session, patch.metadata).await.map_err(internal)? {
        return Err(not_found());
    }
    let c = api.conversations.get(&agent, &session, 50, 0).await.map_err(internal)?.ok_or_else(not_found)?;
    Ok(Json(conversation_json(&c, &session)).into_response())
}
