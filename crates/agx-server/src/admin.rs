//! The admin API: orgs, agents, teams and keys, behind a bearer token. The
//! one response that ever holds a plaintext key is key creation (and roll).
//!
//! [`ROUTES`] is this API's one route table: the router is built from it,
//! and so are the OpenAPI document's admin paths.

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use agx_auth::{
    AgentRecord, AuditAction, AuditPage, Credits, IpNet, KeyChange, KeyId, KeyMode, KeyRecord, KeySpec, KeyStanding,
    LeakReportError, MAX_CREDITS, Quota, Refill, Scope, StoreError, TeamRecord, routable_id,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use http::Method;

use crate::audit;
use crate::dashboard::{Caller, NO_ORG};
use crate::errors::{ApiError, JsonBody, PathParams, QueryParams};
use crate::input::{MAX_FOUND_IN, MAX_LIST, check_name, check_optional, host, network};
use crate::routing::{self, RouterError};
use crate::schema::{
    Agent, AgentPatch, AuditEvent, AuditEvents, AuditQuery, DashboardToken, Key, KeyPatch, LeakReport, LeakResult,
    LeakedKey, NewAgent, NewCredits, NewDashboardToken, NewKey, NewOrg, NewTeam, Org, Roll, Team, Usage, UsageDay,
    Whole,
};
use crate::state::AppState;
use crate::time;

/// One admin operation: what the router serves and the document describes.
pub struct AdminRoute {
    pub method: Method,
    pub path: &'static str,
    pub operation: &'static str,
    pub summary: &'static str,
    /// The request body's schema (in `schema.rs`), if it takes one.
    pub body: Option<&'static str>,
    /// The success status and the answer's schema.
    pub ok: (&'static str, Option<&'static str>),
    /// Its query parameters: each an optional whole number, `(name, min, max)`.
    pub query: &'static [(&'static str, u64, u64)],
}

pub static ROUTES: [AdminRoute; 18] = {
    const fn r(
        method: Method,
        path: &'static str,
        operation: &'static str,
        summary: &'static str,
        body: Option<&'static str>,
        ok: (&'static str, Option<&'static str>),
    ) -> AdminRoute {
        AdminRoute { method, path, operation, summary, body, ok, query: &[] }
    }
    /// A route with query parameters.
    const fn with_query(
        method: Method,
        path: &'static str,
        operation: &'static str,
        summary: &'static str,
        ok: (&'static str, Option<&'static str>),
        query: &'static [(&'static str, u64, u64)],
    ) -> AdminRoute {
        AdminRoute { method, path, operation, summary, body: None, ok, query }
    }
    const KEY: &str = "/api/admin/orgs/{orgId}/keys/{keyId}";
    [
        r(Method::POST, "/api/admin/orgs", "createOrg", "Create an organization", Some("NewOrg"), ("201", Some("Org"))),
        r(
            Method::GET,
            "/api/admin/orgs",
            "listOrgs",
            "The organizations the caller may reach",
            None,
            ("200", Some("OrgList")),
        ),
        r(Method::GET, "/api/admin/orgs/{orgId}/agents", "listAgents", "List agents", None, ("200", Some("AgentList"))),
        r(
            Method::PATCH,
            "/api/admin/orgs/{orgId}/agents/{agentId}",
            "updateAgent",
            "Change an agent's name, allowed domains or state",
            Some("AgentPatch"),
            ("200", Some("Agent")),
        ),
        r(Method::GET, "/api/admin/orgs/{orgId}/teams", "listTeams", "List teams", None, ("200", Some("TeamList"))),
        r(
            Method::POST,
            "/api/admin/orgs/{orgId}/dashboard-tokens",
            "createDashboardToken",
            "Create an org dashboard token (admin token only); the only answer that holds it",
            Some("NewDashboardToken"),
            ("201", Some("DashboardToken")),
        ),
        r(
            Method::GET,
            "/api/admin/orgs/{orgId}/dashboard-tokens",
            "listDashboardTokens",
            "List an org's dashboard tokens (never the tokens themselves)",
            None,
            ("200", Some("DashboardTokenList")),
        ),
        r(
            Method::DELETE,
            "/api/admin/orgs/{orgId}/dashboard-tokens/{tokenId}",
            "deleteDashboardToken",
            "Delete a dashboard token, and end its sessions",
            None,
            ("204", None),
        ),
        r(
            Method::POST,
            "/api/admin/orgs/{orgId}/agents",
            "createAgent",
            "Create an agent",
            Some("NewAgent"),
            ("201", Some("Agent")),
        ),
        r(
            Method::POST,
            "/api/admin/orgs/{orgId}/teams",
            "createTeam",
            "Create a team",
            Some("NewTeam"),
            ("201", Some("Team")),
        ),
        r(
            Method::POST,
            "/api/admin/orgs/{orgId}/keys",
            "createKey",
            "Create a key; the only answer that holds it",
            Some("NewKey"),
            ("201", Some("Key")),
        ),
        r(
            Method::GET,
            "/api/admin/orgs/{orgId}/keys",
            "listKeys",
            "List keys (never the keys themselves)",
            None,
            ("200", Some("KeyList")),
        ),
        r(Method::DELETE, KEY, "deleteKey", "Delete a key", None, ("204", None)),
        r(
            Method::PATCH,
            KEY,
            "updateKey",
            "Change a key's rate limits, networks or usage credits",
            Some("KeyPatch"),
            ("200", Some("Key")),
        ),
        r(
            Method::POST,
            "/api/admin/orgs/{orgId}/keys/{keyId}/roll",
            "rollKey",
            "A new key now; the old one expires after the grace period",
            Some("Roll"),
            ("201", Some("Key")),
        ),
        r(
            Method::POST,
            "/api/admin/orgs/{orgId}/leaks",
            "reportLeaks",
            "Revoke this organization's keys found in a text (a leak); answers with prefixes, never a key",
            Some("LeakReport"),
            ("200", Some("LeakResult")),
        ),
        r(
            Method::GET,
            "/api/admin/orgs/{orgId}/keys/{keyId}/usage",
            "keyUsage",
            "A key's use per day and endpoint class",
            None,
            ("200", Some("Usage")),
        ),
        with_query(
            Method::GET,
            "/api/admin/orgs/{orgId}/audit-log",
            "listAuditEvents",
            "Who changed what of the org, newest first, a page at a time (never a key)",
            ("200", Some("AuditEvents")),
            &[AUDIT_LIMIT, AUDIT_BEFORE],
        ),
    ]
};

fn handler(operation: &str, method: MethodFilter) -> Option<MethodRouter<Arc<AppState>>> {
    Some(match operation {
        "createOrg" => on(method, create_org),
        "listOrgs" => on(method, list_orgs),
        "listAgents" => on(method, list_agents),
        "updateAgent" => on(method, update_agent),
        "listTeams" => on(method, list_teams),
        "createDashboardToken" => on(method, create_dashboard_token),
        "listDashboardTokens" => on(method, list_dashboard_tokens),
        "deleteDashboardToken" => on(method, delete_dashboard_token),
        "createAgent" => on(method, create_agent),
        "createTeam" => on(method, create_team),
        "createKey" => on(method, create_key),
        "listKeys" => on(method, list_keys),
        "deleteKey" => on(method, delete_key),
        "updateKey" => on(method, update_key),
        "rollKey" => on(method, roll_key),
        "keyUsage" => on(method, key_usage),
        "reportLeaks" => on(method, report_leaks),
        "listAuditEvents" => on(method, list_audit_events),
        _ => return None,
    })
}

/// The admin router, built from [`ROUTES`].
/// The admin routes, without their layers: `app::build` puts the guard
/// (`dashboard::access::guard`) in front of them, which hands each handler
/// its [`Caller`].
pub fn routes(state: Arc<AppState>) -> Result<Router, RouterError> {
    let table = ROUTES.iter().map(|r| (&r.method, r.path, Some(r.operation)));
    Ok(routing::from_table(table, handler)?
        .method_not_allowed_fallback(|| async { ApiError::METHOD_NOT_ALLOWED })
        .with_state(state))
}

const KEY_NOT_FOUND: ApiError = ApiError::new(StatusCode::NOT_FOUND, "KEY_NOT_FOUND", "No such key");
const CONFLICT: ApiError = ApiError::new(StatusCode::CONFLICT, "CONFLICT", "The request conflicts with what is stored");
const BAD_NAME: ApiError =
    ApiError::invalid("name must be 1 to 200 characters, without control or bidirectional-control characters");
const BAD_ID: ApiError = ApiError::invalid("An id is 1 to 64 letters, digits, '-' or '_'");
const BAD_AGENT_ID: ApiError =
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_AGENT_ID", "An agent id is 1 to 64 letters, digits, '-' or '_'");
const BAD_DOMAINS: ApiError = ApiError::invalid(
    "allowedDomains must be at most 100 host names (letters, digits, '-' and '.', e.g. app.example.com)",
);
const BAD_TEAM_AGENTS: ApiError = ApiError::invalid("agentIds must be at most 100 distinct agent ids");
const FOREIGN_AGENT: ApiError =
    ApiError::new(StatusCode::CONFLICT, "CONFLICT", "agentIds must name agents of this organization");
const BAD_SCOPE: ApiError = ApiError::invalid("scopes must be distinct documented scopes");
const BAD_MODE: ApiError = ApiError::invalid("mode must be \"live\" or \"test\"");
const BAD_EXPIRY: ApiError =
    ApiError::invalid("expiresAt must be an RFC 3339 date-time after 1970 (e.g. 2027-01-01T00:00:00Z)");
const BAD_CLASS: ApiError = ApiError::invalid("rateLimits must name documented endpoint classes");
const BAD_QUOTA: ApiError = ApiError::invalid("a rate limit must be 1 to 1000000000 per minute");
const BAD_NETWORKS: ApiError = ApiError::invalid(
    "allowedNetworks must be at most 100 networks in CIDR (e.g. 203.0.113.0/24, 2001:db8::/32) or addresses",
);
const BAD_CREDITS: ApiError =
    ApiError::invalid("credits must be 0 to 9007199254740991 uses, refilled to as many every 1 second to ten years");
const BAD_GRACE: ApiError = ApiError::invalid("gracePeriodSeconds must be at most ten years");

/// The most a per-key quota may be, per minute (some 16 million a second:
/// enough for a load test, far from the limiter's arithmetic limits).
pub const MAX_QUOTA: u32 = 1_000_000_000;

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "No such organization or agent"),
        StoreError::Conflict(why) => {
            tracing::debug!(%why, "admin request conflicts");
            CONFLICT
        }
        StoreError::Unavailable(why) => {
            tracing::warn!(%why, "store unavailable");
            ApiError::UNAVAILABLE
        }
    }
}

/// An org id from the path: one no store can hold is not looked up.
fn org_id(org: &str) -> Result<(), ApiError> {
    if routable_id(org) { Ok(()) } else { Err(NO_ORG) }
}

fn id_or_new(state: &AppState, id: Option<String>, prefix: &str, bad: ApiError) -> Result<String, ApiError> {
    match id {
        Some(id) if !routable_id(&id) => Err(bad),
        Some(id) => Ok(id),
        None => state.new_id(prefix).map_err(|_| ApiError::UNAVAILABLE),
    }
}

async fn create_org(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<NewOrg>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    check_name(&body.name, BAD_NAME)?;
    let id = id_or_new(&state, body.id, "org", BAD_ID)?;
    let written = state.backend.admin.put_org(&id, &body.name).await.map_err(store_error)?;
    audit::record(&state, &caller.1, audit::org_written(&id, &body.name, written)).await;
    Ok((StatusCode::CREATED, Json(Org { id, name: body.name })).into_response())
}

async fn create_agent(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<NewAgent>,
) -> Result<Response, ApiError> {
    org_id(caller.org(&org)?)?;
    check_name(&body.name, BAD_NAME)?;
    let domains = body.allowed_domains;
    if domains.len() > MAX_LIST || !domains.iter().all(|d| host(d)) {
        return Err(BAD_DOMAINS);
    }
    let agent = AgentRecord {
        id: id_or_new(&state, body.id, "agent", BAD_AGENT_ID)?,
        org,
        name: body.name,
        allowed_domains: domains,
        active: body.active,
        public: body.public,
    };
    // Written again under its id, an agent is updated, not created.
    let written = state.backend.admin.put_agent(agent.clone()).await.map_err(store_error)?;
    audit::record(&state, &caller.1, audit::agent_written(&agent, written)).await;
    Ok((StatusCode::CREATED, Json(Agent::from(&agent))).into_response())
}

async fn create_team(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<NewTeam>,
) -> Result<Response, ApiError> {
    org_id(caller.org(&org)?)?;
    check_name(&body.name, BAD_NAME)?;
    let agent_ids = body.agent_ids;
    if agent_ids.len() > MAX_LIST || !agent_ids.iter().all(|a| routable_id(a)) {
        return Err(BAD_TEAM_AGENTS);
    }
    let team = TeamRecord { id: id_or_new(&state, body.id, "team", BAD_ID)?, org, name: body.name, agent_ids };
    if team.repeated_agent().is_some() {
        return Err(BAD_TEAM_AGENTS);
    }
    // The org is the path's: 404 if it is missing. An agent the body names
    // that is not the org's conflicts with what is stored: 409.
    if state.backend.admin.org(&team.org).await.map_err(store_error)?.is_none() {
        return Err(NO_ORG);
    }
    let written = state.backend.admin.put_team(team.clone()).await.map_err(|e| match e {
        StoreError::NotFound(_) => FOREIGN_AGENT,
        other => store_error(other),
    })?;
    audit::record(&state, &caller.1, audit::team_written(&team, written)).await;
    let body = Team { id: team.id, org_id: team.org, name: team.name, agent_ids: team.agent_ids };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn create_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<NewKey>,
) -> Result<Response, ApiError> {
    org_id(caller.org(&org)?)?;
    check_name(&body.name, BAD_NAME)?;
    let routes = state.auth.routes();
    let repeated = body.scopes.iter().enumerate().any(|(i, s)| body.scopes[..i].contains(s));
    if repeated || !body.scopes.iter().all(|s| routes.scopes().any(|known| known.as_str() == s)) {
        return Err(BAD_SCOPE);
    }
    let mode = match body.mode.as_deref() {
        None => KeyMode::Live,
        Some(m) => KeyMode::parse(m).ok_or(BAD_MODE)?,
    };
    let mut spec = KeySpec::new(org, body.name).scopes(body.scopes.into_iter().map(Scope::new)).mode(mode);
    if let Some(at) = body.expires_at {
        // A date already past makes a key that is expired from the start.
        spec = spec.expires_at(time::parse(&at).map_err(|_| BAD_EXPIRY)?);
    }
    spec.rate_limits = rate_limits(&state, body.rate_limits)?;
    // Repeats (also `10.0.0.1/8` beside `10.0.0.0/8`) are kept once.
    spec = spec.allowed_networks(networks(&body.allowed_networks)?);
    spec.credits = body.credits.map(credits).transpose()?;
    let (key, record) = state.auth.issue_key(spec).await.map_err(store_error)?;
    audit::record(&state, &caller.1, audit::key_created(&record)).await;
    let created = Key { key: Some(key.expose_secret().to_owned()), ..shown(&state, &record).await };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Per-class quotas from a body: documented classes, 1 to [`MAX_QUOTA`].
fn rate_limits(state: &AppState, limits: BTreeMap<String, Whole>) -> Result<Vec<(String, Quota)>, ApiError> {
    let routes = state.auth.routes();
    limits
        .into_iter()
        .map(|(class, n)| {
            if !routes.classes().any(|c| c.as_str() == class) {
                return Err(BAD_CLASS);
            }
            let n = u32::try_from(n.0).ok().filter(|n| *n <= MAX_QUOTA).ok_or(BAD_QUOTA)?;
            Ok((class, Quota::try_per_minute(n).ok_or(BAD_QUOTA)?))
        })
        .collect()
}

/// Networks from a body: at most [`MAX_LIST`], each CIDR or an address.
fn networks(networks: &[String]) -> Result<Vec<IpNet>, ApiError> {
    if networks.len() > MAX_LIST {
        return Err(BAD_NETWORKS);
    }
    networks.iter().map(|n| network(n)).collect::<Option<_>>().ok_or(BAD_NETWORKS)
}

/// Credits from a body: counts to [`MAX_CREDITS`], a refill interval of a
/// second to ten years.
fn credits(body: NewCredits) -> Result<Credits, ApiError> {
    let count = |n: Whole| Some(n.0).filter(|&n| n <= MAX_CREDITS).ok_or(BAD_CREDITS);
    let refill = match body.refill {
        None => None,
        Some(r) if (1..=TEN_YEARS_SECS).contains(&r.interval_seconds.0) => {
            Some(Refill { amount: count(r.amount)?, interval: Duration::from_secs(r.interval_seconds.0) })
        }
        Some(_) => return Err(BAD_CREDITS),
    };
    Ok(Credits { initial: count(body.remaining)?, refill })
}

/// At most ten years: longer periods overflow timestamp conversions.
const TEN_YEARS_SECS: u64 = 10 * 365 * 86_400;

/// A key as the API shows it: with what its credits have left now, and
/// when they refill next.
pub async fn shown(state: &AppState, record: &KeyRecord) -> Key {
    let mut key = Key::from(record);
    if let (Some(view), Some(account)) = (key.credits.as_mut(), record.credits) {
        view.remaining = match state.auth.credits_remaining(record).await {
            Ok(left) => left,
            Err(e) => {
                tracing::warn!(error = %e, "a key's credits could not be read");
                None
            }
        };
        view.next_refill_at = account.refills_at(account.period(state.auth.clock().now())).map(time::format);
    }
    key
}

async fn update_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams((org, key)): PathParams<(String, String)>,
    JsonBody(patch): JsonBody<KeyPatch>,
) -> Result<Response, ApiError> {
    let id = key_path(caller.org(&org)?, &key)?;
    let mut change = KeyChange::default();
    if let Some(limits) = patch.rate_limits {
        change = change.rate_limits(rate_limits(&state, limits)?);
    }
    if let Some(list) = &patch.allowed_networks {
        change = change.allowed_networks(networks(list)?);
    }
    let credits_set = matches!(patch.credits, Some(Some(_)));
    if let Some(given) = patch.credits {
        change = change.credits(given.map(credits).transpose()?);
    }
    let update = state.auth.update_key(&org, id, change).await.map_err(store_error)?.ok_or(KEY_NOT_FOUND)?;
    let entry = audit::key_updated(&update.before, &update.after, credits_set);
    if !entry.changes.is_empty() {
        audit::record(&state, &caller.1, entry).await;
    }
    // A roll's other half was changed with it: its change is its own event.
    for (before, after) in &update.lineage {
        let entry = audit::key_updated(before, after, credits_set).change("changedWith", id.to_string());
        audit::record(&state, &caller.1, entry).await;
    }
    Ok(Json(shown(&state, &update.after).await).into_response())
}

async fn list_keys(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Response, ApiError> {
    org_id(caller.org(&org)?)?;
    // An empty list would say the org exists and has no keys.
    if state.backend.admin.org(&org).await.map_err(store_error)?.is_none() {
        return Err(NO_ORG);
    }
    let keys = state.backend.keys_of(&org).await.map_err(store_error)?;
    let mut body = Vec::with_capacity(keys.len());
    for (r, used) in &keys {
        body.push(Key { last_used_at: Some(used.map(time::format)), ..shown(&state, r).await });
    }
    Ok(Json(body).into_response())
}

/// `(org, key id)` from the path: an org or key id that cannot exist is 404.
fn key_path(org: &str, key: &str) -> Result<KeyId, ApiError> {
    if !routable_id(org) {
        return Err(KEY_NOT_FOUND);
    }
    key.parse().map_err(|_| KEY_NOT_FOUND)
}

async fn delete_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams((org, key)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let id = key_path(caller.org(&org)?, &key)?;
    if state.auth.delete_key(&org, id).await.map_err(store_error)? {
        audit::record(&state, &caller.1, audit::key_deleted(&org, id)).await;
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(KEY_NOT_FOUND)
    }
}

async fn roll_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams((org, key)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<Roll>,
) -> Result<Response, ApiError> {
    let id = key_path(caller.org(&org)?, &key)?;
    if body.grace_period_seconds.0 > TEN_YEARS_SECS {
        return Err(BAD_GRACE);
    }
    let grace = Duration::from_secs(body.grace_period_seconds.0);
    match state.auth.roll_key(&org, id, grace).await.map_err(store_error)? {
        Some((key, record)) => {
            // The old key as the roll left it: its expiry may be sooner than the grace.
            let old = state.backend.keys.get(&org, id).await.ok().flatten().and_then(|r| r.expires_at);
            audit::record(&state, &caller.1, audit::key_rolled(id, old, &record, grace)).await;
            let rolled = Key { key: Some(key.expose_secret().to_owned()), ..shown(&state, &record).await };
            Ok((StatusCode::CREATED, Json(rolled)).into_response())
        }
        None => Err(KEY_NOT_FOUND),
    }
}

async fn report_leaks(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<LeakReport>,
) -> Result<Response, ApiError> {
    const BAD_FOUND_IN: ApiError =
        ApiError::invalid("foundIn must be 1 to 2048 characters, not blank, without control characters");
    const TOO_MANY: ApiError = ApiError::invalid("a leak report may hold at most 100 distinct keys");
    // The text's length is the body limit's to bound (413 past it).
    let org = known_org(&state, &caller, &org).await?;
    let found_in = body.found_in.as_deref();
    check_optional(found_in, MAX_FOUND_IN, BAD_FOUND_IN)?;
    let judged = state.auth.report_leaks(org, body.text.as_bytes()).await.map_err(|e| match e {
        LeakReportError::TooManyKeys(_) => TOO_MANY,
        LeakReportError::Store(e) => store_error(e),
    })?;
    let mut keys = Vec::with_capacity(judged.len());
    for (found, standing) in &judged {
        let record = match standing {
            KeyStanding::Live(r) | KeyStanding::Deleted(r) | KeyStanding::Expired(r) => Some(r),
            KeyStanding::Unknown => None,
        };
        if let KeyStanding::Live(r) = standing {
            tracing::warn!(org = %r.org, key = %r.id, "leak report: a leaked key was revoked");
            audit::record(&state, &caller.1, audit::key_revoked_leaked(r, found_in)).await;
        }
        keys.push(LeakedKey {
            prefix: found.key.display_prefix(),
            line: found.line as u64,
            column: found.column as u64,
            standing: standing.reported(),
            key_id: record.map(|r| r.id.to_string()),
        });
    }
    Ok(Json(LeakResult { keys }).into_response())
}

async fn key_usage(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams((org, key)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let id = key_path(caller.org(&org)?, &key)?;
    if state.backend.keys.get(&org, id).await.map_err(store_error)?.is_none() {
        return Err(KEY_NOT_FOUND);
    }
    let report = state.backend.usage_of(id).await.map_err(store_error)?;
    let usage = report
        .days
        .into_iter()
        .map(|d| UsageDay {
            day: time::day(d.day),
            class: d.class,
            requests: d.tally.admitted,
            rate_limited: d.tally.rate_limited,
            refused: d.tally.refused,
        })
        .collect();
    Ok(Json(Usage { key_id: id.to_string(), last_used_at: report.last_used.map(time::format), usage }).into_response())
}

async fn list_orgs(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Response, ApiError> {
    let orgs = state.backend.admin.orgs().await.map_err(store_error)?;
    let body: Vec<Org> =
        orgs.into_iter().filter(|(id, _)| caller.0.allows(id)).map(|(id, name)| Org { id, name }).collect();
    Ok(Json(body).into_response())
}

/// The org of the path, reachable by the caller and existing; else 404.
async fn known_org<'a>(state: &AppState, caller: &Caller, org: &'a str) -> Result<&'a str, ApiError> {
    org_id(caller.org(org)?)?;
    match state.backend.admin.org(org).await.map_err(store_error)? {
        Some(_) => Ok(org),
        None => Err(NO_ORG),
    }
}

async fn list_agents(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Response, ApiError> {
    let org = known_org(&state, &caller, &org).await?;
    let agents = state.backend.admin.agents_of(org).await.map_err(store_error)?;
    Ok(Json(agents.iter().map(Agent::from).collect::<Vec<_>>()).into_response())
}

async fn update_agent(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams((org, agent)): PathParams<(String, String)>,
    JsonBody(patch): JsonBody<AgentPatch>,
) -> Result<Response, ApiError> {
    const NO_AGENT: ApiError = ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "No such agent");
    org_id(caller.org(&org)?)?;
    if !routable_id(&agent) {
        return Err(NO_AGENT);
    }
    if let Some(name) = &patch.name {
        check_name(name, BAD_NAME)?;
    }
    if let Some(domains) = &patch.allowed_domains
        && (domains.len() > MAX_LIST || !domains.iter().all(|d| host(d)))
    {
        return Err(BAD_DOMAINS);
    }
    // The directory's record, not a cached one: this is a read before a write.
    let current = state.backend.admin.agents_of(&org).await.map_err(store_error)?;
    let mut record = current.into_iter().find(|a| a.id == agent).ok_or(NO_AGENT)?;
    record.name = patch.name.unwrap_or(record.name);
    record.allowed_domains = patch.allowed_domains.unwrap_or(record.allowed_domains);
    record.active = patch.active.unwrap_or(record.active);
    record.public = patch.public.unwrap_or(record.public);
    let written = state.backend.admin.put_agent(record.clone()).await.map_err(store_error)?;
    audit::record(&state, &caller.1, audit::agent_written(&record, written)).await;
    Ok(Json(Agent::from(&record)).into_response())
}

async fn list_teams(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Response, ApiError> {
    let org = known_org(&state, &caller, &org).await?;
    let teams = state.backend.admin.teams_of(org).await.map_err(store_error)?;
    let body: Vec<Team> =
        teams.into_iter().map(|t| Team { id: t.id, org_id: t.org, name: t.name, agent_ids: t.agent_ids }).collect();
    Ok(Json(body).into_response())
}

fn dashboard_error(e: crate::dashboard::DashboardError) -> ApiError {
    tracing::warn!(error = %e, "dashboard store unavailable");
    ApiError::UNAVAILABLE
}

async fn create_dashboard_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<NewDashboardToken>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let org = known_org(&state, &caller, &org).await?;
    check_name(&body.name, BAD_NAME)?;
    let (token, info) = state.dashboard.create_token(org, &body.name, &state.rng).await.map_err(dashboard_error)?;
    let entry = audit::dashboard_token(AuditAction::DashboardTokenCreated, org, &info.id, Some(&info.name));
    audit::record(&state, &caller.1, entry).await;
    let created = DashboardToken { token: Some(token), ..DashboardToken::from(&info) };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn list_dashboard_tokens(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Response, ApiError> {
    let org = known_org(&state, &caller, &org).await?;
    let tokens = state.dashboard.tokens(org).await.map_err(dashboard_error)?;
    Ok(Json(tokens.iter().map(DashboardToken::from).collect::<Vec<_>>()).into_response())
}

async fn delete_dashboard_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams((org, token)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    const NO_TOKEN: ApiError = ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "No such dashboard token");
    org_id(caller.org(&org)?)?;
    if !routable_id(&token) {
        return Err(NO_TOKEN);
    }
    if state.dashboard.delete_token(&org, &token).await.map_err(dashboard_error)? {
        let entry = audit::dashboard_token(AuditAction::DashboardTokenDeleted, &org, &token, None);
        audit::record(&state, &caller.1, entry).await;
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(NO_TOKEN)
    }
}

/// The most events one page holds, and the page size when none is asked for.
pub const MAX_AUDIT_PAGE: usize = 200;
pub const AUDIT_PAGE: usize = 50;
/// The audit log's query parameters, `(name, min, max)`: what the document
/// gives and the handler checks.
const AUDIT_LIMIT: (&str, u64, u64) = ("limit", 1, MAX_AUDIT_PAGE as u64);
const AUDIT_BEFORE: (&str, u64, u64) = ("before", 1, i64::MAX as u64);

fn within((_, min, max): (&str, u64, u64), n: u64) -> bool {
    (min..=max).contains(&n)
}

async fn list_audit_events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Response, ApiError> {
    const BAD_LIMIT: ApiError = ApiError::invalid("limit must be 1 to 200");
    let org = known_org(&state, &caller, &org).await?;
    const BAD_BEFORE: ApiError = ApiError::invalid("before must be an event id, 1 or more");
    if query.before.is_some_and(|b| !within(AUDIT_BEFORE, b)) {
        return Err(BAD_BEFORE);
    }
    let limit = match query.limit {
        None => AUDIT_PAGE,
        Some(n) if within(AUDIT_LIMIT, n) => n as usize,
        Some(_) => return Err(BAD_LIMIT),
    };
    let page = AuditPage { before: query.before, limit };
    let events = state.backend.audit.events(org, page).await.map_err(store_error)?;
    let next_before = page.next_before(&events);
    let events = events.iter().map(AuditEvent::from).collect();
    Ok(Json(AuditEvents { events, next_before }).into_response())
}
