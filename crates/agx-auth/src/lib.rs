//! The framework-free core of agx-auth.
//!
//! A request travels `Route → Credential → ApiKey → KeyHash → KeyRecord →
//! policy → RateLimiter → CreditLedger → Verdict`, and only [`Authenticator`] knows that
//! order (contract §3). Everything here depends on `http` and `ring`, never on
//! a web framework, a database or a cache: adapters and stores live in their
//! own crates and plug in through [`KeyStore`], [`Directory`], [`RateLimiter`]
//! and [`ErrorRenderer`].
//!
//! ```
//! use std::sync::Arc;
//! use agx_auth::{Authenticator, KeyMode, KeySpec, MemoryStore, Outcome};
//! use http::{HeaderMap, HeaderValue, Method};
//!
//! # tokio_test();
//! # fn tokio_test() {
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! let store = Arc::new(MemoryStore::new());
//! store.insert_org("org_1", "Acme");
//! store.insert_agent(agx_auth::AgentRecord::new("agent_1", "org_1", "Support"));
//! let auth = Authenticator::builder(store.clone(), store.clone()).build();
//!
//! let (key, _record) = auth.issue_key(KeySpec::new("org_1", "Production Widget")).await.unwrap();
//! let mut headers = HeaderMap::new();
//! let bearer = format!("Bearer {}", key.expose_secret());
//! headers.insert("authorization", HeaderValue::from_str(&bearer).unwrap());
//!
//! let outcome = auth.authenticate(&Method::GET, "/api/public/agents/agent_1", &headers).await;
//! let Outcome::Allow(grant) = outcome else { panic!("expected a grant") };
//! assert_eq!(grant.principal().org(), "org_1");
//! assert_eq!(grant.principal().mode(), KeyMode::Live);
//! # });
//! # }
//! ```

pub use bytes;

mod audit;
mod authenticator;
mod clock;
mod credential;
mod credits;
mod error;
mod fields;
mod forward;
mod key;
mod limit;
mod lookup;
mod network;
mod policy;
mod redact;
mod render;
mod request;
mod route;
mod scan;
mod store;
mod usage;
mod verify;

pub use audit::{Actor, AuditAction, AuditEntry, AuditEvent, AuditLog, AuditPage, MemoryAuditLog};
pub use authenticator::{Authenticator, AuthenticatorBuilder, Grant, Outcome, Principal, Rejection, VerdictObserver};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use credential::{CredentialError, MAX_CREDENTIAL_LEN, extract_credential};
pub use credits::{
    CreditAccount, CreditCell, CreditDecision, CreditLedger, Credits, LedgerError, MAX_CREDITS, MemoryLedger, Refill,
    remaining_credits, spend_credits,
};
pub use error::{AuthError, ErrorDoc};
pub use forward::{
    ForwardError, Gateway, GatewayStyle, PRINCIPAL_HEADERS, X_AGX_BODY, X_AGX_KEY_ID, X_AGX_KEY_NAME, X_AGX_MODE,
    X_AGX_ORG, X_AGX_SCOPES, X_AGX_STATUS, X_FORWARDED_METHOD, X_FORWARDED_URI, X_ORIGINAL_METHOD, X_ORIGINAL_URI,
    original_request, text_value,
};
pub use key::{ApiKey, KEY_LEN, KeyFormatError, KeyHash, KeyHasher, KeyId, KeyIdParseError, KeyMode, RANDOM_LEN};
pub use limit::{
    GcraLimiter, LimitError, Quota, RateDecision, RateLimitStatus, RateLimiter, RateLimits, gcra, status_at,
};
pub use lookup::Lookup;
pub use network::{ClientAddresses, ForwardedHeader, IpNet, canonical_network, network_allowed};
pub use policy::origin_allowed;
pub use redact::redact_url;
pub use render::{ErrorRenderer, JsonEnvelope, ProblemJson, RenderedError};
pub use request::{FromPeer, RequestHeader, RequestHeaders};
pub use route::{
    AGENT_PARAM, EndpointClass, MAX_RESOURCE_ID_LEN, ROUTABLE_ID_PATTERN, Resource, ResourceKind, RouteInfo,
    RouteMatch, Routes, Scope, TEAM_PARAM, Unmatched, ops, routable_id,
};
pub use scan::{FoundKey, KeyStanding, LeakReportError, MAX_REPORTED_KEYS, TooManyKeys, find_keys};
pub use store::{
    AgentRecord, Directory, DirectoryAdmin, KeyChange, KeyHashes, KeyRecord, KeySpec, KeyStore, KeyUpdate, MemoryStore,
    Revocation, RevocationSink, StoreError, TeamRecord, Written,
};
pub use usage::{Tally, UsageBatch, UsageCounter, UsageDay, UsageOutcome, UsageRecorder, UsageReport, UsageRow};
pub use verify::{VerifyError, VerifyRequest, VerifyTarget};
