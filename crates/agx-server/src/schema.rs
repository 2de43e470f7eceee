//! The bodies the APIs take and give, as types: serde reads and writes them,
//! and `utoipa` derives the OpenAPI schemas from the same definitions, so
//! the document cannot describe a field the server does not have.

use std::collections::BTreeMap;

use agx_auth::{AgentRecord, KeyRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::time;

/// `POST /api/public/agents/{agentId}/chat` and the team's.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatRequest {
    /// 1 to 4000 characters.
    #[schema(min_length = 1, max_length = 4000)]
    pub message: String,
    /// The conversation: 1 to 128 characters, no `/`.
    #[schema(min_length = 1, max_length = 128)]
    pub session_id: String,
    #[schema(min_length = 1, max_length = 200)]
    pub visitor_id: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub visitor_email: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub visitor_name: Option<String>,
    /// Merged into the conversation's metadata (at most 16 KiB in all).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// `PATCH …/conversations/{sessionId}`: merged into the metadata.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationPatch {
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Theme {
    pub primary_color: &'static str,
    pub position: &'static str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    pub streaming: bool,
    pub conversation_history: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub max_message_length: usize,
    /// The calling key's chat quota per minute: its own, or the default.
    pub rate_limit_per_minute: u32,
}

/// `GET /api/public/agents/{agentId}`. It borrows from the agent's record:
/// the config route is the hot one, and this answer needs no allocation
/// but its JSON text.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentConfig<'a> {
    pub id: &'a str,
    pub name: &'a str,
    #[schema(value_type = String)]
    pub description: Sentence<'a>,
    #[schema(value_type = String)]
    pub welcome_message: Sentence<'a>,
    pub placeholder_text: &'static str,
    pub theme: Theme,
    pub features: Features,
    pub limits: Limits,
}

impl<'a> AgentConfig<'a> {
    pub fn new(agent: &'a AgentRecord, theme: Theme, max_message_length: usize, rate_limit_per_minute: u32) -> Self {
        AgentConfig {
            id: &agent.id,
            name: &agent.name,
            description: Sentence("", &agent.name, " answers questions for its organization."),
            welcome_message: welcome(agent),
            placeholder_text: PLACEHOLDER,
            theme,
            features: Features { streaming: true, conversation_history: true },
            limits: Limits { max_message_length, rate_limit_per_minute },
        }
    }
}

/// A sentence around a name, written straight into the JSON text.
pub struct Sentence<'a>(&'static str, &'a str, &'static str);

impl Serialize for Sentence<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Sentence(before, name, after) = self;
        serializer.collect_str(&format_args!("{before}{name}{after}"))
    }
}

const PLACEHOLDER: &str = "Type your message…";

fn welcome(agent: &AgentRecord) -> Sentence<'_> {
    Sentence("Hi! I'm ", &agent.name, ". How can I help?")
}

/// `GET /api/public/agents/{agentId}/widget`, borrowed like [`AgentConfig`].
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Widget<'a> {
    pub agent_id: &'a str,
    pub name: &'a str,
    #[schema(value_type = String)]
    pub welcome_message: Sentence<'a>,
    pub placeholder_text: &'static str,
    pub theme: Theme,
    pub allowed_domains: &'a [String],
}

impl<'a> Widget<'a> {
    pub fn new(agent: &'a AgentRecord, theme: Theme) -> Self {
        Widget {
            agent_id: &agent.id,
            name: &agent.name,
            welcome_message: welcome(agent),
            placeholder_text: PLACEHOLDER,
            theme,
            allowed_domains: &agent.allowed_domains,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    /// RFC 3339.
    pub timestamp: String,
}

/// A conversation with one page of its messages.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    pub id: String,
    pub session_id: String,
    pub agent_id: String,
    pub agent_name: String,
    pub messages: Vec<MessageView>,
    /// All messages, not only this page's.
    pub message_count: usize,
    pub created_at: String,
    pub updated_at: String,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

/// Every error: `{"error":{"code":…,"message":…}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The documented code (docs/errors.md).
    pub code: String,
    /// A constant explanation: it never repeats a request value.
    pub message: String,
}

/// `POST /api/admin/orgs`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    /// Chosen by the server when absent.
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct Org {
    pub id: String,
    pub name: String,
}

/// `POST /api/admin/orgs/{orgId}/agents`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewAgent {
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Hosts (and their subdomains) whose pages may call this agent; empty: any.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub allowed_domains: Vec<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default = "yes")]
    pub public: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub allowed_domains: Vec<String>,
    pub active: bool,
    pub public: bool,
}

/// `PATCH /api/admin/orgs/{orgId}/agents/{agentId}`: what is present changes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentPatch {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Replaces the list; empty: any origin.
    #[schema(max_items = 100)]
    pub allowed_domains: Option<Vec<String>>,
    pub active: Option<bool>,
    pub public: Option<bool>,
}

/// `POST /api/admin/orgs/{orgId}/dashboard-tokens`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDashboardToken {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

/// An org dashboard token: signs one org into the dashboard and the admin API.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardToken {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created_at: String,
    /// Only when created: the plaintext token, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<&crate::dashboard::TokenInfo> for DashboardToken {
    fn from(t: &crate::dashboard::TokenInfo) -> Self {
        DashboardToken {
            id: t.id.clone(),
            org_id: t.org.clone(),
            name: t.name.clone(),
            created_at: time::format(t.created_at),
            token: None,
        }
    }
}

impl From<&AgentRecord> for Agent {
    fn from(a: &AgentRecord) -> Self {
        Agent {
            id: a.id.clone(),
            org_id: a.org.clone(),
            name: a.name.clone(),
            allowed_domains: a.allowed_domains.clone(),
            active: a.active,
            public: a.public,
        }
    }
}

/// `POST /api/admin/orgs/{orgId}/teams`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewTeam {
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Agents of the same org, each once.
    #[schema(max_items = 100)]
    pub agent_ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub agent_ids: Vec<String>,
}

/// `POST /api/admin/orgs/{orgId}/keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewKey {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// None: every scope. The names are the route table's scopes (the
    /// document lists them).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// RFC 3339, e.g. `2027-01-01T00:00:00Z`.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// `live` (default) or `test`.
    pub mode: Option<String>,
    /// Requests per minute (1 to 1,000,000,000) per endpoint class, instead of
    /// the defaults. The classes are the route table's (the document lists them).
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, u32>)]
    pub rate_limits: BTreeMap<String, Whole>,
    /// The client networks the key may be used from, in CIDR
    /// (`203.0.113.0/24`, `2001:db8::/32`) or as single addresses; at most
    /// 100. None: any network.
    #[serde(default)]
    pub allowed_networks: Vec<String>,
    /// Usage credits: each admitted request spends its route's cost (1 on
    /// every Agentix route). None: the key is not counted.
    #[serde(default, deserialize_with = "nullable_object")]
    pub credits: Option<NewCredits>,
}

/// Usage credits given to a key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewCredits {
    /// The uses the key holds until its first refill (0 to 2^53 − 1).
    #[schema(value_type = u64, minimum = 0, maximum = 9_007_199_254_740_991_u64)]
    pub remaining: Whole,
    /// None: the credits are never refilled.
    #[serde(default, deserialize_with = "nullable_object")]
    pub refill: Option<NewRefill>,
}

/// Every `intervalSeconds`, counted from when the credits were set, the key
/// holds `amount` again; what was left is not carried over.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewRefill {
    #[schema(value_type = u64, minimum = 0, maximum = 9_007_199_254_740_991_u64)]
    pub amount: Whole,
    /// 1 second to ten years.
    #[schema(value_type = u64, minimum = 1, maximum = 315_360_000)]
    pub interval_seconds: Whole,
}

/// `PATCH /api/admin/orgs/{orgId}/keys/{keyId}`: each limit present is
/// replaced, each absent stays. Name, scopes, mode and expiry are fixed:
/// another of those is another key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyPatch {
    /// Replaces every per-class override; `{}` returns to the defaults.
    #[schema(value_type = Option<BTreeMap<String, u32>>)]
    pub rate_limits: Option<BTreeMap<String, Whole>>,
    /// Replaces the list; empty: any network.
    pub allowed_networks: Option<Vec<String>>,
    /// Sets the credits afresh (what was spent is forgotten, refills count
    /// from now); `null` takes them away.
    #[serde(default, deserialize_with = "present_object")]
    #[schema(value_type = Option<NewCredits>)]
    pub credits: Option<Option<NewCredits>>,
}

/// A nested body that must be a JSON object or `null`. serde's derive also
/// reads a struct from an array of its fields in order (`[5, [2, 3600]]`),
/// a form no document describes; `JsonBody` refuses it at the top, this
/// below.
struct ObjectOf<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOf<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = ObjectOf<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<ObjectOf<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ObjectOf)
            }
        }
        d.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

/// An object or `null` (`None`; also when absent, with `#[serde(default)]`).
fn nullable_object<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<ObjectOf<T>>::deserialize(d).map(|o| o.map(|ObjectOf(t)| t))
}

/// A field that is present, `null` or not: `Some(None)` for `null`, and
/// (with `#[serde(default)]`) `None` when absent.
fn present_object<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    nullable_object(d).map(Some)
}

/// A key's credits: what it was given, and what is left.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyCredits {
    /// Left now; `null` when the ledger cannot be reached.
    pub remaining: Option<u64>,
    /// What the key held when the credits were set.
    pub initial: u64,
    pub refill: Option<RefillView>,
    /// When the credits were set; refills count from here.
    pub since: String,
    /// The next refill; `null` without one.
    pub next_refill_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefillView {
    pub amount: u64,
    pub interval_seconds: u64,
}

/// A whole number, however JSON writes it: `14` or `14.0` (JSON Schema's
/// `integer` admits both, so a client generated from the document may send
/// either).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Whole(pub u64);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Whole;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a whole number, 0 or more")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Whole, E> {
                Ok(Whole(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Whole, E> {
                u64::try_from(v).map(Whole).map_err(|_| E::custom("negative"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Whole, E> {
                // 2^53: past it, an f64 no longer holds every whole number.
                if v.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&v) {
                    Ok(Whole(v as u64))
                } else {
                    Err(E::custom("not a whole number"))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A key as listed: never the key itself.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Key {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub mode: &'static str,
    /// `agx_live_sk7G…mA`: enough to recognise a key, not to use it.
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    /// Per-class quota overrides.
    pub rate_limits: BTreeMap<String, u32>,
    /// In CIDR; empty: any network.
    pub allowed_networks: Vec<String>,
    /// `null`: the key is not counted.
    pub credits: Option<KeyCredits>,
    /// Only in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<Option<String>>,
    /// Only when created or rolled: the plaintext key, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl From<&KeyRecord> for Key {
    fn from(r: &KeyRecord) -> Self {
        Key {
            id: r.id.to_string(),
            name: r.name.clone(),
            scopes: r.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            mode: r.mode.as_str(),
            prefix: r.prefix.clone(),
            created_at: time::format(r.created_at),
            expires_at: r.expires_at.map(time::format),
            rate_limits: r.rate_limits.iter().map(|(c, q)| (c.to_string(), q.get())).collect(),
            allowed_networks: r.allowed_networks.iter().map(ToString::to_string).collect(),
            credits: r.credits.map(|a| KeyCredits {
                remaining: None,
                initial: a.credits.initial,
                refill: a
                    .credits
                    .refill
                    .map(|r| RefillView { amount: r.amount, interval_seconds: r.interval.as_secs() }),
                since: time::format(a.since),
                next_refill_at: None,
            }),
            last_used_at: None,
            key: None,
        }
    }
}

/// `POST /api/admin/orgs/{orgId}/leaks`: a text where keys were found.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LeakReport {
    /// The text as found (a paste, a file, a log), within the server's
    /// body limit (64 KiB for the whole body; 413 past it; `agx-server
    /// scan` reads files of any size). Keys are found
    /// by their checksum, so examples and look-alikes are not. The text is
    /// not kept.
    pub text: String,
    /// Where it was found (a URL, a path), for the audit log: 1 to 2,048
    /// characters, not blank, no control characters.
    pub found_in: Option<String>,
}

/// What a leak report found, each distinct key once, in order.
#[derive(Serialize, ToSchema)]
pub struct LeakResult {
    pub keys: Vec<LeakedKey>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeakedKey {
    /// The key's display prefix: never the key.
    pub prefix: String,
    /// Where it first appears: 1-based line and byte column.
    pub line: u64,
    pub column: u64,
    /// `revoked` (it was live, and is no longer), `deleted`, `expired`, or
    /// `unknown`: not this organization's key, or no one's.
    pub standing: &'static str,
    /// The organization's key; `null` when unknown.
    pub key_id: Option<String>,
}

/// `POST …/keys/{keyId}/roll`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Roll {
    /// How long the old key keeps working; at most ten years.
    #[schema(value_type = u64, minimum = 0, maximum = 315_360_000)]
    pub grace_period_seconds: Whole,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageDay {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub class: String,
    /// Requests admitted.
    pub requests: u64,
    /// Requests refused with 429 `RATE_LIMITED`.
    pub rate_limited: u64,
    /// Requests refused with 403: the key's scope or org, or the agent's
    /// domains or state.
    pub refused: u64,
}

/// `GET …/keys/{keyId}/usage`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub key_id: String,
    pub last_used_at: Option<String>,
    pub usage: Vec<UsageDay>,
}

/// `POST /api/verify`: a key and what it is to be judged for. Either
/// `method` and `path` (a request, classified by the route table), or
/// `scope` and `class` with at most one of `agent` and `team` (a
/// permission).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyCall {
    /// The key exactly as the client sent it (the `X-API-Key` value, or the
    /// token after `Bearer `). Absent or empty: the client sent none.
    pub key: Option<String>,
    /// An HTTP method token, e.g. `POST`.
    pub method: Option<String>,
    /// The request's path as received, e.g. `/api/public/agents/a1/chat`;
    /// a query is dropped.
    pub path: Option<String>,
    /// A scope the route table declares.
    pub scope: Option<String>,
    /// An endpoint class the route table declares: whose budget is spent.
    pub class: Option<String>,
    /// The agent acted on: checked for the key's org, state and domains.
    pub agent: Option<String>,
    /// The team acted on: checked for the key's org.
    pub team: Option<String>,
    /// The client's `Origin` header, for agents with allowed domains.
    pub origin: Option<String>,
    /// The client's IP address as the calling service saw it, for keys
    /// limited to networks; without it such keys are refused.
    #[serde(rename = "clientAddress")]
    pub client_address: Option<String>,
}

/// The verdict on a verify call. Admit the request only on a 200 whose
/// `allowed` is `true`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub allowed: bool,
    /// The status the public API answers for this verdict: 200 when allowed.
    pub status: u16,
    /// The documented error code (docs/errors.md); null when allowed.
    pub code: Option<&'static str>,
    /// The documented message of `code`; null when allowed.
    pub message: Option<&'static str>,
    /// Seconds to wait, on `RATE_LIMITED`.
    pub retry_after: Option<u64>,
    /// Who is calling, when allowed (never the key).
    pub principal: Option<VerifiedPrincipal>,
    /// The key's budget in the class, when the verdict reports one.
    pub rate_limit: Option<Budget>,
    /// The usage credits left after this request, when the key carries
    /// them and the request was allowed.
    pub credits_remaining: Option<u64>,
    /// The header fields the client is owed, exactly as the public API
    /// sends them (lowercase names: `ratelimit-policy`, `ratelimit`,
    /// `www-authenticate`, `retry-after`).
    pub headers: BTreeMap<String, String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedPrincipal {
    pub org: String,
    pub key_id: String,
    pub key_name: String,
    /// Empty: every scope.
    pub scopes: Vec<String>,
    /// `live` or `test`.
    pub mode: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Budget {
    pub class: &'static str,
    /// Requests per minute.
    pub limit: u32,
    /// Requests that would be admitted now, back to back.
    pub remaining: u32,
    /// Seconds until the budget is full again, rounded up.
    pub reset: u64,
}

/// `GET …/audit-log`'s query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// 1 to 200 events; 50 when absent.
    pub limit: Option<u64>,
    /// Only events older than this one (a `nextBefore` from the page before).
    pub before: Option<u64>,
}

/// One change to an org, as the audit log keeps it: never a key.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Its place in the log; pages are cut by it.
    pub id: u64,
    pub at: String,
    /// `org.created`, `org.updated`, `agent.created`, `agent.updated`,
    /// `team.created`, `team.updated`,
    /// `key.created`, `key.rolled`, `key.updated`, `key.deleted`,
    /// `key.revoked_leaked`, `dashboard_token.created`, `dashboard_token.deleted`.
    pub action: &'static str,
    /// The id of the key, agent, team, token or org changed.
    pub target: String,
    /// `adminToken`, `dashboardToken`, `cli` or `secretScanning`.
    pub actor: &'static str,
    /// The dashboard token's id, for `dashboardToken`.
    pub actor_id: Option<String>,
    /// The fields the change set, as text, in the admin API's names.
    pub changes: BTreeMap<String, String>,
}

impl From<&agx_auth::AuditEvent> for AuditEvent {
    fn from(e: &agx_auth::AuditEvent) -> Self {
        AuditEvent {
            id: e.seq,
            at: time::format(e.at),
            action: e.entry.action.as_str(),
            target: e.entry.target.clone(),
            actor: e.actor.kind(),
            actor_id: e.actor.id().map(str::to_owned),
            changes: e.entry.changes.iter().map(|(f, v)| (f.to_string(), v.clone())).collect(),
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvents {
    pub events: Vec<AuditEvent>,
    /// Pass as `before` for the next page; `null` on the last.
    pub next_before: Option<u64>,
}
