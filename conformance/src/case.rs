//! The shape of the contract as data: case files under `conformance/cases/`.
//!
//! A case speaks in contract terms: a world of orgs, agents and teams (the
//! same for every case, see [`World`]), the keys the case needs, and steps:
//! requests with what must come back, clock moves, deletions, outages.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What a target must be able to do for a case to run on it. A black-box
/// server cannot move its clock or switch its store off; cases that need
/// that are skipped there, and the matrix says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Capability {
    /// The target's clock can be moved.
    Clock,
    /// The target's store can be switched off.
    Faults,
    /// The target is the in-process stub app: its handlers echo the
    /// principal, and it declares one host route with no agent
    /// (`GET /api/public/status`, scope and class `config`).
    StubApp,
    /// The target's rate limiter can be switched off.
    LimiterFaults,
    /// The target is the reference server, which answers `POST /api/verify`.
    VerifyApi,
    /// The target keeps an audit log of its admin changes, which the
    /// fixtures can read (the reference server's admin API).
    AuditLog,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    pub group: String,
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Case {
    pub name: String,
    /// Which rule of the contract this shows.
    pub doc: String,
    #[serde(default)]
    pub requires: Vec<Capability>,
    #[serde(default)]
    pub keys: BTreeMap<String, KeyFixture>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyFixture {
    /// A world org: `a` or `b`.
    #[serde(default = "org_a")]
    pub org: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub test_mode: bool,
    /// Seconds from now (the target's clock); `0` means already expired.
    pub expires_in: Option<u64>,
    /// Per-class quota overrides.
    #[serde(default)]
    pub rate_limits: BTreeMap<String, u32>,
    /// The client networks the key may be used from (CIDR).
    #[serde(default)]
    pub allowed_networks: Vec<String>,
    /// Usage credits; none: the key is not counted.
    pub credits: Option<CreditsFixture>,
    /// Created, then deleted before the first step.
    #[serde(default)]
    pub deleted: bool,
}

/// A key's usage credits, as the admin API takes them.
#[derive(Clone, Copy, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreditsFixture {
    pub remaining: u64,
    pub refill: Option<RefillFixture>,
}

#[derive(Clone, Copy, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefillFixture {
    pub amount: u64,
    pub interval_seconds: u64,
}

fn org_a() -> String {
    "a".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Step {
    Request(RequestStep),
    Concurrent(ConcurrentStep),
    Advance {
        /// Seconds to move the clock forward (needs `clock`).
        advance: f64,
    },
    DeleteKey {
        #[serde(rename = "deleteKey")]
        delete_key: String,
    },
    RollKey(RollStep),
    StoreAvailable {
        /// Switches the target's store off or on (needs `faults`).
        #[serde(rename = "storeAvailable")]
        store_available: bool,
    },
    /// Reads the org's newest audit events, one per expected entry, and
    /// matches each against its entry (needs `auditLog`). No declared
    /// key's plaintext may appear in any of them.
    AuditLog {
        #[serde(rename = "auditLog")]
        audit_log: String,
        /// Each a pattern: every field it names must be equal (placeholders
        /// expanded); fields it leaves out are not compared.
        expect: Vec<serde_json::Value>,
    },
    /// Reports the named keys as leaked by org `org` (a world org, `a` by
    /// default), in a text that also holds a look-alike, and expects what
    /// became of each, in order: `revoked`, `deleted`, `expired` or
    /// `unknown`.
    ReportLeak {
        #[serde(rename = "reportLeak")]
        report_leak: Vec<String>,
        #[serde(default = "org_a")]
        org: String,
        expect: Vec<String>,
    },
    LimiterAvailable {
        /// Switches the target's rate limiter off or on (needs `limiterFaults`).
        #[serde(rename = "limiterAvailable")]
        limiter_available: bool,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestStep {
    pub request: RequestSpec,
    pub expect: Expect,
    /// Send the same request this many times, expecting the same each time.
    #[serde(default = "one")]
    pub repeat: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConcurrentStep {
    /// How many copies of the request to send at once.
    pub concurrent: u32,
    pub request: RequestSpec,
    /// How many responses must have each status (keys are statuses as
    /// strings: JSON object keys are strings).
    pub expect_counts: BTreeMap<String, u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RollStep {
    /// The key to roll.
    pub roll_key: String,
    /// The name the new key goes by in later steps.
    pub new_key: String,
    pub grace_seconds: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestSpec {
    #[serde(default = "get")]
    pub method: String,
    /// With placeholders: `{agent:a1}`, `{team:ta}`, `{key:main}`.
    pub path: String,
    #[serde(default)]
    pub headers: Vec<(String, HeaderSpec)>,
    /// A JSON body, sent as `application/json`, with placeholders expanded
    /// in its strings; without one, POST and PATCH send a valid chat or
    /// patch body.
    pub body: Option<serde_json::Value>,
    /// A body sent as it is (for bodies that are not JSON).
    pub raw_body: Option<String>,
}

fn get() -> String {
    "GET".to_owned()
}

/// A header value: text with placeholders, or raw bytes, or something long.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum HeaderSpec {
    Text(String),
    Built(BuiltValue),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltValue {
    #[serde(default)]
    pub prefix: String,
    /// Raw bytes after the prefix (for non-UTF-8 values).
    #[serde(default)]
    pub bytes: Vec<u8>,
    /// `repeat` × `times` after the bytes (for oversized values).
    #[serde(default)]
    pub repeat: String,
    #[serde(default)]
    pub times: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    pub status: u16,
    /// The documented error code; the runner then checks the exact body,
    /// content type, `WWW-Authenticate` and `Retry-After` from `errors.json`.
    pub code: Option<String>,
    /// For `INSUFFICIENT_SCOPE`: the scope named in the challenge.
    pub scope: Option<String>,
    /// Exact header values; `null` means the header must be absent.
    #[serde(default)]
    pub headers: BTreeMap<String, Option<String>>,
    /// What the handler saw (needs `principal`).
    pub principal: Option<PrincipalExpect>,
    /// The exact JSON body, with placeholders expanded in its strings
    /// (`{org:a}`, `{keyId:k}`).
    pub json: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrincipalExpect {
    pub org: String,
    pub mode: String,
    pub key_name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// How each documented error looks on the wire (`cases/errors.json`). Written
/// from the contract, not from the library, so the suite checks the library
/// rather than repeating it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ErrorSpec {
    pub status: u16,
    pub message: String,
    /// Exact value, with `{scope}` for the route's scope; `null`: absent.
    pub www_authenticate: Option<String>,
    pub retry_after: bool,
    /// Whether `RateLimit-Policy` and `RateLimit` accompany this error.
    pub rate_limit_fields: bool,
}

/// The orgs, agents and teams every case starts with, each under ids made
/// unique per case so that cases never see each other's state.
pub struct World;

pub struct WorldAgent {
    pub name: &'static str,
    pub org: &'static str,
    pub allowed_domains: &'static [&'static str],
    pub active: bool,
    pub public: bool,
}

impl World {
    pub const ORGS: [&'static str; 2] = ["a", "b"];
    pub const AGENTS: [WorldAgent; 6] = [
        WorldAgent { name: "a1", org: "a", allowed_domains: &[], active: true, public: true },
        WorldAgent { name: "a2", org: "a", allowed_domains: &["example.com"], active: true, public: true },
        WorldAgent { name: "a3", org: "a", allowed_domains: &[], active: false, public: true },
        WorldAgent { name: "a4", org: "a", allowed_domains: &[], active: true, public: false },
        WorldAgent { name: "a5", org: "a", allowed_domains: &["example.com"], active: false, public: true },
        WorldAgent { name: "b1", org: "b", allowed_domains: &[], active: true, public: true },
    ];
    /// (team, org, agents)
    pub const TEAMS: [(&'static str, &'static str, &'static [&'static str]); 2] =
        [("ta", "a", &["a1"]), ("tb", "b", &["b1"])];
}
