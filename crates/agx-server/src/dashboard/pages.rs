//! The dashboard's pages: server-rendered HTML (askama templates in
//! `templates/`), one embedded script and one style sheet. Pages only read;
//! every change is the page's script calling the admin API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Router, routing::get};
use cookie::{Cookie, SameSite};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;

use super::access::{SESSION_COOKIE, bearer_access, cookie, csrf_ok, session_of};
use super::chart;
use super::store::{Access, Session};
use crate::errors::PathParams;
use crate::state::AppState;
use crate::time;

/// How sessions are made: their lifetime, and when the cookie is `Secure`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub session_ttl: Duration,
    /// Always `Secure` (the server is behind TLS).
    pub secure_cookies: bool,
    /// Proxies whose `X-Forwarded-Proto: https` makes the cookie `Secure`.
    pub trusted_proxies: Vec<agx_auth::IpNet>,
}

/// The login form's own CSRF cookie (there is no session to hold it yet).
const LOGIN_COOKIE: &str = "agx_login";
/// When a key's status turns from `active` to `expiring`.
const EXPIRING_WITHIN: Duration = Duration::from_secs(7 * 86_400);

const SCRIPT: &str = include_str!("../../assets/app.js");
const STYLE: &str = include_str!("../../assets/app.css");

/// The dashboard's paths, in the order [`routes`] gives them handlers: the
/// one list, which the fuzz target reads too.
pub const ROUTES: [&str; 10] = [
    "/dashboard",
    "/dashboard/login",
    "/dashboard/logout",
    "/dashboard/orgs",
    "/dashboard/orgs/{orgId}/settings/api-keys",
    "/dashboard/orgs/{orgId}/keys/{keyId}/usage",
    "/dashboard/orgs/{orgId}/agents",
    "/dashboard/orgs/{orgId}/audit-log",
    "/dashboard/assets/app.js",
    "/dashboard/assets/app.css",
];

pub fn routes() -> Router<Arc<AppState>> {
    let [home_path, login_path, logout_path, orgs_path, keys_path, usage_path, agents_path, audit_path, script, style] =
        ROUTES;
    Router::new()
        .route(home_path, get(home))
        .route(login_path, get(login_page).post(login))
        .route(logout_path, axum::routing::post(logout))
        .route(orgs_path, get(orgs))
        .route(keys_path, get(keys))
        .route(usage_path, get(usage))
        .route(agents_path, get(agents))
        .route(audit_path, get(audit_log))
        .route(script, get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route(style, get(|| async { asset("text/css; charset=utf-8", STYLE) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// What the layout needs: the page title, the session's CSRF token, the org.
struct Nav {
    title: String,
    csrf: Option<String>,
    org: Option<OrgRef>,
    all_orgs: bool,
}

struct OrgRef {
    id: String,
    name: String,
}

impl Nav {
    fn signed_out(title: &str) -> Self {
        Nav { title: title.to_owned(), csrf: None, org: None, all_orgs: false }
    }

    fn of(session: &Session, title: impl Into<String>, org: Option<OrgRef>) -> Self {
        Nav { title: title.into(), csrf: Some(session.csrf.clone()), org, all_orgs: session.access == Access::All }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Nav,
    login_csrf: String,
    failed: bool,
}

#[derive(Template)]
#[template(path = "orgs.html")]
struct OrgsPage {
    nav: Nav,
    orgs: Vec<OrgRef>,
}

struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    mode: &'static str,
    scopes: String,
    networks: String,
    /// The networks as the limits form edits them: empty for any.
    networks_value: String,
    credits: String,
    created: String,
    expires: String,
    last_used: String,
    status: &'static str,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    nav: Nav,
    org_id: String,
    keys: Vec<KeyRow>,
    scopes: Vec<String>,
    classes: Vec<String>,
}

struct UsageRow {
    day: String,
    class: String,
    admitted: u64,
    rate_limited: u64,
    refused: u64,
    flag: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    nav: Nav,
    org_id: String,
    key_name: String,
    last_used: String,
    chart: String,
    legend: Vec<String>,
    rows: Vec<UsageRow>,
}

struct AgentRow {
    id: String,
    name: String,
    active: bool,
    public: bool,
    domains: String,
}

#[derive(Template)]
#[template(path = "agents.html")]
struct AgentsPage {
    nav: Nav,
    org_id: String,
    agents: Vec<AgentRow>,
}

struct AuditRow {
    when: String,
    action: &'static str,
    target: String,
    by: String,
    changes: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    org_id: String,
    events: Vec<AuditRow>,
    /// The next page's cursor, when this one was full.
    older: Option<u64>,
}

/// A page, or why not: signed out (to the login page), not found, or the
/// store is down.
enum Refusal {
    SignedOut,
    NotFound,
    Unavailable,
    /// A form body that is not the page's form.
    BadForm,
    TooManyTries,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Refusal::SignedOut => return Redirect::to("/dashboard/login").into_response(),
            Refusal::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            Refusal::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "The store does not answer; try again shortly"),
            Refusal::BadForm => (StatusCode::BAD_REQUEST, "That is not the sign-in page's form"),
            Refusal::TooManyTries => {
                (StatusCode::TOO_MANY_REQUESTS, "Too many wrong tokens from this address; wait a minute")
            }
        };
        let page = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{text} · Agentix</title>\
             <link rel=\"stylesheet\" href=\"/dashboard/assets/app.css\"></head><body><main><h1>{text}</h1>\
             <p><a href=\"/dashboard\">Back to the dashboard</a></p></main></body></html>"
        );
        (status, Html(page)).into_response()
    }
}

fn render(page: impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a dashboard template failed");
            Refusal::Unavailable.into_response()
        }
    }
}

async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Session, Refusal> {
    match session_of(state, headers).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(Refusal::SignedOut),
        Err(_) => Err(Refusal::Unavailable),
    }
}

/// The session's view of `org`: the org's name, if the session may see it
/// and it exists.
async fn org_of(state: &AppState, session: &Session, org: &str) -> Result<OrgRef, Refusal> {
    if !session.access.allows(org) || !agx_auth::routable_id(org) {
        return Err(Refusal::NotFound);
    }
    match state.backend.admin.org(org).await {
        Ok(Some(name)) => Ok(OrgRef { id: org.to_owned(), name }),
        Ok(None) => Err(Refusal::NotFound),
        Err(_) => Err(Refusal::Unavailable),
    }
}

/// A signed-in session on a page of one org (`/dashboard/orgs/{orgId}/…`)
/// that it may see: the extractor every org page starts with. Anything else
/// is a [`Refusal`]: signed out, another org's or no org (404), or the store
/// down.
struct OrgPage {
    session: Session,
    org: OrgRef,
}

impl FromRequestParts<Arc<AppState>> for OrgPage {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Refusal> {
        let params = RawPathParams::from_request_parts(parts, state).await.map_err(|_| Refusal::NotFound)?;
        let org =
            params.iter().find(|(name, _)| *name == "orgId").map(|(_, v)| v.to_owned()).ok_or(Refusal::NotFound)?;
        let session = signed_in(state, &parts.headers).await?;
        let org = org_of(state, &session, &org).await?;
        Ok(OrgPage { session, org })
    }
}

impl OrgPage {
    /// The layout's view of this page.
    fn nav(&self, title: impl Into<String>) -> Nav {
        Nav::of(&self.session, title, Some(OrgRef { id: self.org.id.clone(), name: self.org.name.clone() }))
    }
}

async fn home(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers).await {
        Ok(Session { access: Access::All, .. }) => Redirect::to("/dashboard/orgs").into_response(),
        Ok(Session { access: Access::Org(org), .. }) => {
            Redirect::to(&format!("/dashboard/orgs/{org}/settings/api-keys")).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

fn set_cookie(response: &mut Response, cookie: Cookie<'_>) {
    if let Ok(value) = HeaderValue::try_from(cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Whether the browser reached us over TLS: always, by the settings, or by
/// a trusted proxy's word.
fn secure(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> bool {
    let settings = &state.dashboard_settings;
    settings.secure_cookies
        || (settings.trusted_proxies.iter().any(|n| n.contains(&peer.ip().to_canonical()))
            && headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")))
}

async fn login_page(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    login_form(&state, peer, &headers, false)
}

fn login_form(state: &AppState, peer: SocketAddr, headers: &HeaderMap, failed: bool) -> Response {
    let Ok(login_csrf) = state.new_id("login") else { return Refusal::Unavailable.into_response() };
    let mut response = render(LoginPage { nav: Nav::signed_out("Sign in"), login_csrf: login_csrf.clone(), failed });
    if failed {
        *response.status_mut() = StatusCode::UNAUTHORIZED;
    }
    let cookie = Cookie::build((LOGIN_COOKIE, login_csrf))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/dashboard")
        .secure(secure(state, peer, headers))
        .build();
    set_cookie(&mut response, cookie);
    response
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    token: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else { return Refusal::BadForm.into_response() };
    if !state.sign_ins.allows(peer.ip()) {
        return Refusal::TooManyTries.into_response();
    }
    // The form must come from our own login page: its token matches the cookie that page set.
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    let same =
        !expected.is_empty() && bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), form.csrf.as_bytes()));
    let found = if same { bearer_access(&state, form.token.as_bytes()).await } else { Ok(None) };
    let (access, token_id) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            state.sign_ins.failed(peer.ip());
            return login_form(&state, peer, &headers, true);
        }
        Err(_) => return Refusal::Unavailable.into_response(),
    };
    let ttl = state.dashboard_settings.session_ttl;
    let Ok((value, _)) = state.dashboard.open_session(access, token_id, ttl, &state.rng).await else {
        return Refusal::Unavailable.into_response();
    };
    let secure = secure(&state, peer, &headers);
    let mut response = Redirect::to("/dashboard").into_response();
    let max_age = cookie::time::Duration::seconds(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    let session = Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(max_age)
        .secure(secure)
        .build();
    set_cookie(&mut response, session);
    set_cookie(
        &mut response,
        Cookie::build((LOGIN_COOKIE, "")).path("/dashboard").max_age(cookie::time::Duration::ZERO).build(),
    );
    response
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: String,
}

async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else { return Refusal::BadForm.into_response() };
    let session = match signed_in(&state, &headers).await {
        Ok(session) => session,
        Err(refusal) => return refusal.into_response(),
    };
    if !csrf_ok(&session, Some(form.csrf.as_bytes())) {
        return (StatusCode::FORBIDDEN, "The form lacks this session's token").into_response();
    }
    if let Some(value) = cookie(&headers, SESSION_COOKIE)
        && state.dashboard.close_session(value).await.is_err()
    {
        return Refusal::Unavailable.into_response();
    }
    let mut response = Redirect::to("/dashboard/login").into_response();
    set_cookie(
        &mut response,
        Cookie::build((SESSION_COOKIE, "")).path("/").max_age(cookie::time::Duration::ZERO).build(),
    );
    response
}

async fn orgs(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, Refusal> {
    let session = signed_in(&state, &headers).await?;
    if let Access::Org(org) = &session.access {
        return Ok(Redirect::to(&format!("/dashboard/orgs/{org}/settings/api-keys")).into_response());
    }
    let all = state.backend.admin.orgs().await.map_err(|_| Refusal::Unavailable)?;
    let orgs = all.into_iter().map(|(id, name)| OrgRef { id, name }).collect();
    Ok(render(OrgsPage { nav: Nav::of(&session, "Organizations", None), orgs }))
}

fn when(t: SystemTime) -> String {
    // `2026-12-02T14:37:13Z` → `2026-12-02 14:37 UTC`.
    let text = time::format(t);
    match (text.get(..10), text.get(11..16)) {
        (Some(day), Some(hm)) => format!("{day} {hm} UTC"),
        _ => text,
    }
}

fn status(expires_at: Option<SystemTime>, now: SystemTime) -> &'static str {
    match expires_at {
        Some(at) if at <= now => "expired",
        Some(at) if at <= now + EXPIRING_WITHIN => "expiring",
        _ => "active",
    }
}

/// A key's credits cell: `not counted`, or what is left of what and when
/// it refills.
fn credits(view: Option<crate::schema::KeyCredits>) -> String {
    let Some(c) = view else { return "not counted".to_owned() };
    let left = c.remaining.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
    match c.refill {
        None => format!("{left} left of {}", c.initial),
        Some(r) => format!(
            "{left} left; refills to {} every {}",
            r.amount,
            humantime::format_duration(std::time::Duration::from_secs(r.interval_seconds))
        ),
    }
}

async fn keys(State(state): State<Arc<AppState>>, page: OrgPage) -> Result<Response, Refusal> {
    let org = &page.org;
    let records = state.backend.keys_of(&org.id).await.map_err(|_| Refusal::Unavailable)?;
    let now = SystemTime::now();
    let mut keys = Vec::with_capacity(records.len());
    for (r, used) in &records {
        let networks = r.allowed_networks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        keys.push(KeyRow {
            id: r.id.to_string(),
            name: r.name.clone(),
            prefix: r.prefix.clone(),
            mode: r.mode.as_str(),
            scopes: if r.scopes.is_empty() {
                "every scope".to_owned()
            } else {
                r.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            },
            networks: if networks.is_empty() { "any".to_owned() } else { networks.clone() },
            networks_value: networks,
            credits: credits(crate::admin::shown(&state, r).await.credits),
            created: when(r.created_at),
            expires: r.expires_at.map_or_else(|| "never".to_owned(), when),
            last_used: used.map_or_else(|| "never".to_owned(), when),
            status: status(r.expires_at, now),
        });
    }
    let routes = state.auth.routes();
    let page = KeysPage {
        nav: page.nav("Settings > API Keys"),
        org_id: org.id.clone(),
        keys,
        scopes: routes.scopes().map(|s| s.as_str().to_owned()).collect(),
        classes: routes.classes().map(|c| c.as_str().to_owned()).collect(),
    };
    Ok(render(page))
}

async fn usage(
    State(state): State<Arc<AppState>>,
    page: OrgPage,
    PathParams((_, key)): PathParams<(String, String)>,
) -> Result<Response, Refusal> {
    let org = &page.org;
    let id = key.parse().map_err(|_| Refusal::NotFound)?;
    let record =
        state.backend.keys.get(&org.id, id).await.map_err(|_| Refusal::Unavailable)?.ok_or(Refusal::NotFound)?;
    let report = state.backend.usage_of(id).await.map_err(|_| Refusal::Unavailable)?;
    let today = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
    let days = chart::days(&report, u32::try_from(today).unwrap_or(u32::MAX));
    let classes: Vec<String> = state.auth.routes().classes().map(|c| c.as_str().to_owned()).collect();
    let chart = chart::svg(&days, &classes);
    let rows = days
        .iter()
        .rev()
        .flat_map(|d| {
            d.classes.iter().map(move |(class, t)| UsageRow {
                day: time::day(d.day),
                class: class.clone(),
                admitted: t.admitted,
                rate_limited: t.rate_limited,
                refused: t.refused,
                flag: d.flag,
            })
        })
        .collect();
    let page = UsagePage {
        nav: page.nav(format!("Usage of {}", record.name)),
        org_id: org.id.clone(),
        key_name: record.name.clone(),
        last_used: report.last_used.map_or_else(|| "never".to_owned(), when),
        chart,
        legend: classes,
        rows,
    };
    Ok(render(page))
}

async fn agents(State(state): State<Arc<AppState>>, page: OrgPage) -> Result<Response, Refusal> {
    let org = &page.org;
    let records = state.backend.admin.agents_of(&org.id).await.map_err(|_| Refusal::Unavailable)?;
    let agents = records
        .into_iter()
        .map(|a| AgentRow {
            id: a.id,
            name: a.name,
            active: a.active,
            public: a.public,
            domains: a.allowed_domains.join(", "),
        })
        .collect();
    let page = AgentsPage { nav: page.nav("Agents"), org_id: org.id.clone(), agents };
    Ok(render(page))
}

#[derive(Deserialize)]
struct AuditCursor {
    before: Option<u64>,
}

async fn audit_log(
    State(state): State<Arc<AppState>>,
    page: OrgPage,
    query: Result<axum::extract::Query<AuditCursor>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Refusal> {
    let before = query.map_err(|_| Refusal::NotFound)?.0.before;
    let org = &page.org;
    let limit = crate::admin::AUDIT_PAGE;
    let page_of = agx_auth::AuditPage { before, limit };
    let found = state.backend.audit.events(&org.id, page_of).await.map_err(|_| Refusal::Unavailable)?;
    let older = page_of.next_before(&found);
    let events = found
        .into_iter()
        .map(|e| AuditRow {
            when: when(e.at),
            action: e.entry.action.as_str(),
            target: e.entry.target,
            by: match &e.actor {
                agx_auth::Actor::DashboardToken(id) => format!("dashboard token {id}"),
                agx_auth::Actor::AdminToken => "admin token".to_owned(),
                agx_auth::Actor::Cli => "command line".to_owned(),
                agx_auth::Actor::SecretScanning => "GitHub secret scanning".to_owned(),
            },
            changes: e.entry.changes.iter().map(|(f, v)| format!("{f}: {v}")).collect::<Vec<_>>().join("; "),
        })
        .collect();
    Ok(render(AuditPage { nav: page.nav("Audit log"), org_id: org.id.clone(), events, older }))
}
