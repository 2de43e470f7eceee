//! The Agentix Public API behind the axum adapter. The router is built from
//! the authenticator's route table: each declared route names its operation,
//! and [`handler`] gives the operation's handler, so a route cannot be served
//! without being classified, nor classified without being served (a declared
//! operation without a handler stops the server at start). Every request reaching a
//! handler here has passed agx-auth; the handlers only do the API's work.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use agx_auth::{AgentRecord, EndpointClass, ops};
use agx_auth_axum::Authenticated;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, any, on};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;

use crate::conversations::{Conversation, ConversationError, Conversations, Message, Turn};
use crate::errors::{ApiError, JsonBody, PathParams, QueryParams};
use crate::input::{self, MAX_MESSAGE_CHARS, MAX_MESSAGES, MAX_NAME_CHARS, MAX_PAGE, check_optional, check_text};
use crate::routing::{self, RouterError};
use crate::schema::{AgentConfig, ChatRequest, ConversationPatch, ConversationView, MessageView, Theme, Widget};
use crate::state::AppState;
use crate::time;

pub const CONVERSATION_NOT_FOUND: ApiError = ApiError::new(
    http::StatusCode::NOT_FOUND,
    "CONVERSATION_NOT_FOUND",
    "No conversation with this sessionId for this agent",
);
const CONVERSATION_FULL: ApiError = ApiError::invalid("The conversation holds the most messages allowed (1000)");
const METADATA_TOO_LARGE: ApiError = ApiError::new(
    http::StatusCode::PAYLOAD_TOO_LARGE,
    "PAYLOAD_TOO_LARGE",
    "The conversation's metadata would pass 16 KiB",
);
const BAD_MESSAGE: ApiError = ApiError::invalid("message must be 1 to 4000 characters, without control characters");
const BAD_SESSION: ApiError =
    ApiError::invalid("sessionId must be 1 to 128 characters, without '/' or control characters");
const BAD_VISITOR: ApiError =
    ApiError::invalid("visitor fields must be 1 to 200 characters, without control characters");
const BAD_PAGE: ApiError = ApiError::invalid("limit must be 1 to 100 and offset at most 1000");

/// The handler of each operation the core's table names, on the method the
/// table declares for it.
fn handler(operation: &str, method: MethodFilter) -> Option<MethodRouter<Arc<Api>>> {
    Some(match operation {
        ops::AGENT_CHAT => on(method, agent_chat),
        ops::TEAM_CHAT => on(method, team_chat),
        ops::AGENT_CONFIG => on(method, agent_config),
        ops::AGENT_WIDGET => on(method, widget),
        ops::GET_CONVERSATION => on(method, conversation),
        ops::PATCH_CONVERSATION => on(method, patch_conversation),
        _ => return None,
    })
}

/// The public routes, without their layers: `app::build` wraps them in CORS
/// and agx-auth. (Were it forgotten, `Authenticated` would refuse every
/// request with 401: the handlers cannot run for nobody.)
pub fn routes(state: Arc<AppState>, conversations: Conversations) -> Result<Router, RouterError> {
    let api = Arc::new(Api { state: state.clone(), conversations });
    let table = state.auth.routes().iter().map(|r| (r.method(), r.pattern(), r.operation()));
    Ok(routing::from_table(table, handler)?
        // Anything else under the public base still goes through the auth
        // layer, which refuses it (401 without a key, then 404): this
        // handler only gives those paths a route for the layer to wrap.
        .route("/api/public/{*rest}", any(|| async { ApiError::no_route() }))
        .method_not_allowed_fallback(|| async { ApiError::METHOD_NOT_ALLOWED })
        .with_state(api))
}

struct Api {
    state: Arc<AppState>,
    conversations: Conversations,
}

impl Api {
    fn new_id(&self, prefix: &str) -> String {
        self.state.new_id(prefix).unwrap_or_else(|_| format!("{prefix}_{:016x}", 0))
    }

    async fn agent(&self, id: &str) -> Result<Arc<AgentRecord>, ApiError> {
        // The auth layer already found it; a race with a deletion reads as unavailable.
        self.state.backend.directory.agent(id).await.ok().flatten().ok_or(ApiError::UNAVAILABLE)
    }
}

impl ChatRequest {
    fn validate(&self) -> Result<(), ApiError> {
        check_text(&self.message, MAX_MESSAGE_CHARS, BAD_MESSAGE)?;
        if !input::session_id(&self.session_id) {
            return Err(BAD_SESSION);
        }
        for field in [&self.visitor_id, &self.visitor_email, &self.visitor_name] {
            check_optional(field.as_deref(), MAX_NAME_CHARS, BAD_VISITOR)?;
        }
        if let Some(m) = &self.metadata {
            input::check_metadata(m)?;
        }
        Ok(())
    }
}

/// The built-in agent: deterministic, so that tests and demos can rely on it.
fn reply(agent_name: &str, req: &ChatRequest) -> String {
    let greeting = req.visitor_name.as_deref().map_or_else(|| "Hello".to_owned(), |n| format!("Hello, {n}"));
    format!("{greeting}! This is {agent_name}. You said: \"{}\". How can I help further?", req.message.trim())
}

fn conversation_error(e: ConversationError) -> ApiError {
    match e {
        ConversationError::Full => CONVERSATION_FULL,
        ConversationError::MetadataTooLarge => METADATA_TOO_LARGE,
        other => {
            tracing::error!(error = %other, "conversation store failed");
            ApiError::UNAVAILABLE
        }
    }
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
    let conversation_id = api.conversations.append(turn).await.map_err(conversation_error)?;
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

async fn agent_chat(
    State(api): State<Arc<Api>>,
    PathParams(agent): PathParams<String>,
    Authenticated(_): Authenticated,
    JsonBody(req): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    req.validate()?;
    let record = api.agent(&agent).await?;
    chat(&api, agent, record.name.clone(), req).await
}

async fn team_chat(
    State(api): State<Arc<Api>>,
    PathParams(team): PathParams<String>,
    Authenticated(_): Authenticated,
    JsonBody(req): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    req.validate()?;
    let record = api.state.backend.directory.team(&team).await.ok().flatten().ok_or(ApiError::UNAVAILABLE)?;
    // Agents and teams are separate namespaces: a team named like an agent
    // must not write into that agent's conversations. Ids never hold ':'.
    chat(&api, format!("team:{team}"), record.name.clone(), req).await
}

fn theme() -> Theme {
    Theme { primary_color: "#4f46e5", position: "bottom-right" }
}

async fn agent_config(
    State(api): State<Arc<Api>>,
    PathParams(agent): PathParams<String>,
    Authenticated(principal): Authenticated,
) -> Result<Response, ApiError> {
    let record = api.agent(&agent).await?;
    // What the limiter enforces for this key, not a number of our own.
    let rate_limit = api.state.auth.quota(&principal, EndpointClass::CHAT).get();
    Ok(Json(AgentConfig::new(&record, theme(), MAX_MESSAGE_CHARS, rate_limit)).into_response())
}

async fn widget(
    State(api): State<Arc<Api>>,
    PathParams(agent): PathParams<String>,
    Authenticated(_): Authenticated,
) -> Result<Response, ApiError> {
    let record = api.agent(&agent).await?;
    Ok(Json(Widget::new(&record, theme())).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

fn conversation_view(c: Conversation, session: String) -> ConversationView {
    ConversationView {
        id: c.id,
        session_id: session,
        agent_id: c.agent_id,
        agent_name: c.agent_name,
        messages: c
            .messages
            .into_iter()
            .map(|m| MessageView { id: m.id, role: m.role, content: m.content, timestamp: time::format(m.at) })
            .collect(),
        message_count: c.message_count,
        created_at: time::format(c.created_at),
        updated_at: time::format(c.updated_at),
        metadata: c.metadata,
    }
}

async fn conversation(
    State(api): State<Arc<Api>>,
    PathParams((agent, session)): PathParams<(String, String)>,
    QueryParams(page): QueryParams<Page>,
    Authenticated(_): Authenticated,
) -> Result<Response, ApiError> {
    let limit = page.limit.unwrap_or(50);
    let offset = page.offset.unwrap_or(0);
    if !(1..=MAX_PAGE).contains(&limit) || offset > MAX_MESSAGES {
        return Err(BAD_PAGE);
    }
    // A session id chat would refuse names no conversation; no store is asked.
    if !input::session_id(&session) {
        return Err(CONVERSATION_NOT_FOUND);
    }
    let c = api.conversations.get(&agent, &session, limit, offset).await.map_err(conversation_error)?;
    Ok(Json(conversation_view(c.ok_or(CONVERSATION_NOT_FOUND)?, session)).into_response())
}

async fn patch_conversation(
    State(api): State<Arc<Api>>,
    PathParams((agent, session)): PathParams<(String, String)>,
    Authenticated(_): Authenticated,
    JsonBody(patch): JsonBody<ConversationPatch>,
) -> Result<Response, ApiError> {
    input::check_metadata(&patch.metadata)?;
    if !input::session_id(&session) {
        return Err(CONVERSATION_NOT_FOUND);
    }
    let merged = api.conversations.merge_metadata(&agent, &session, patch.metadata).await;
    if !merged.map_err(conversation_error)? {
        return Err(CONVERSATION_NOT_FOUND);
    }
    let c = api.conversations.get(&agent, &session, 50, 0).await.map_err(conversation_error)?;
    Ok(Json(conversation_view(c.ok_or(CONVERSATION_NOT_FOUND)?, session)).into_response())
}
