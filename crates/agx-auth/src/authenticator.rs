//! The one place that knows the order of the checks (contract §3).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response};
use ring::rand::SystemRandom;

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::credential::{CredentialError, extract_credential};
use crate::credits::{CreditAccount, CreditDecision, CreditLedger, LedgerError, MemoryLedger};
use crate::error::AuthError;
use crate::fields::{FieldValues, ratelimit_value};
use crate::key::{ApiKey, KeyHasher, KeyId, KeyMode};
use crate::limit::{GcraLimiter, Quota, RateDecision, RateLimitStatus, RateLimiter, RateLimits};
use crate::network::{ClientAddresses, network_allowed};
use crate::policy::origin_allowed;
use crate::render::{ErrorRenderer, JsonEnvelope};
use crate::request::{RequestHeader, RequestHeaders};
use crate::route::{EndpointClass, Resource, RouteMatch, Routes, Scope, Unmatched, routable_id};
use crate::store::{Directory, KeyChange, KeyRecord, KeySpec, KeyStore, KeyUpdate, StoreError};
use crate::usage::{UsageOutcome, UsageRecorder};

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-10).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static(RATELIMIT_POLICY_NAME);
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10).
pub const RATELIMIT: HeaderName = HeaderName::from_static(RATELIMIT_NAME);
const RATELIMIT_POLICY_NAME: &str = "ratelimit-policy";
const RATELIMIT_NAME: &str = "ratelimit";

/// Who is calling: the verified key's record. Cloning it is one reference
/// count, so adapters can hand it to handlers by value.
#[derive(Clone)]
pub struct Principal {
    record: Arc<KeyRecord>,
}

impl Principal {
    pub fn key_id(&self) -> KeyId {
        self.record.id
    }

    pub fn org(&self) -> &str {
        &self.record.org
    }

    /// Empty means every scope.
    pub fn scopes(&self) -> &[Scope] {
        &self.record.scopes
    }

    pub fn has_scope(&self, scope: &Scope) -> bool {
        self.record.has_scope(scope)
    }

    pub fn mode(&self) -> KeyMode {
        self.record.mode
    }

    pub fn key_name(&self) -> &str {
        &self.record.name
    }

    pub fn record(&self) -> &KeyRecord {
        &self.record
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("key_id", &self.record.id)
            .field("org", &self.record.org)
            .field("mode", &self.record.mode)
            .field("scopes", &self.record.scopes)
            .finish()
    }
}

/// Sees every verdict and how long it took: for metrics. Called on the hot
/// path, so it must not block; with none set, no time is measured.
pub trait VerdictObserver: Send + Sync + 'static {
    /// `code` is `None` for an admitted request, the error code otherwise.
    fn observe(&self, code: Option<&'static str>, elapsed: std::time::Duration);
}

/// A request that may proceed, and the headers its response must carry.
#[derive(Clone, Debug)]
pub struct Grant {
    principal: Principal,
    rate_limit: Option<GrantedLimit>,
    credits: Option<u64>,
}

/// The rate-limit fields of a grant: the policy value, the `RateLimit`
/// value when it was built at start (see `fields.rs`), and the status.
#[derive(Clone, Debug)]
struct GrantedLimit {
    policy: HeaderValue,
    value: Option<HeaderValue>,
    status: RateLimitStatus,
}

impl Grant {
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    pub fn into_principal(self) -> Principal {
        self.principal
    }

    pub fn rate_limit(&self) -> Option<&RateLimitStatus> {
        self.rate_limit.as_ref().map(|l| &l.status)
    }

    /// The usage credits left after this request, for a key that carries
    /// them on a route that costs some.
    pub fn credits_remaining(&self) -> Option<u64> {
        self.credits
    }

    /// Adds `RateLimit-Policy` and `RateLimit` to the response headers.
    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        // Two inserts, not a loop over `header_fields`: on the hot path an
        // iterator of (name, value) pairs is 144 bytes copied at each step.
        if let Some(l) = &self.rate_limit {
            headers.insert(RATELIMIT_POLICY, l.policy.clone());
            headers.insert(RATELIMIT, l.value());
        }
    }

    /// The same fields as (lowercase name, value) pairs, for frameworks
    /// whose header types are not `http` 1's.
    pub fn header_fields(&self) -> impl Iterator<Item = (&'static str, HeaderValue)> {
        self.rate_limit
            .as_ref()
            .map(|l| [(RATELIMIT_POLICY_NAME, l.policy.clone()), (RATELIMIT_NAME, l.value())])
            .into_iter()
            .flatten()
    }
}

impl GrantedLimit {
    /// The `RateLimit` value: the one built at start, or one built now.
    fn value(&self) -> HeaderValue {
        self.value.clone().unwrap_or_else(|| ratelimit_value(&self.status))
    }
}

/// A refused request: the error, for the host's logs, and the finished
/// response, identical whichever framework sends it.
#[derive(Debug)]
pub struct Rejection {
    error: AuthError,
    response: Response<Bytes>,
    rate_limit: Option<RateLimitStatus>,
}

impl Rejection {
    fn build(
        error: AuthError,
        renderer: &dyn ErrorRenderer,
        challenges: &Challenges,
        limit: Option<(RateLimitStatus, HeaderValue, HeaderValue)>,
    ) -> Self {
        let rendered = renderer.render(&error);
        let mut response = Response::new(rendered.body);
        *response.status_mut() = error.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, rendered.content_type);
        if let Some(challenge) = challenges.for_error(&error) {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if let Some(secs) = error.retry_after_secs() {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        let rate_limit = limit.map(|(status, policy, value)| {
            headers.insert(RATELIMIT_POLICY, policy);
            headers.insert(RATELIMIT, value);
            status
        });
        Rejection { error, response, rate_limit }
    }

    /// A refusal rendered with the defaults (JSON envelope, realm `agentix`),
    /// for adapters with no [`Authenticator`] at hand: an extractor used on a
    /// route the layer does not cover fails closed with this.
    pub fn standalone(error: AuthError) -> Self {
        Rejection::build(error, &JsonEnvelope, &Challenges::new("agentix"), None)
    }

    pub fn error(&self) -> &AuthError {
        &self.error
    }

    pub fn response(&self) -> &Response<Bytes> {
        &self.response
    }

    /// The key's budget in the route's class, when the refusal reports it
    /// (a 403 or 429 once the key is known): the same status its
    /// `RateLimit` fields carry.
    pub fn rate_limit(&self) -> Option<&RateLimitStatus> {
        self.rate_limit.as_ref()
    }

    pub fn into_response(self) -> Response<Bytes> {
        self.response
    }
}

/// What an adapter does with a request.
#[derive(Debug)]
pub enum Outcome {
    /// Call the handler with the principal, then [`Grant::apply_headers`].
    Allow(Grant),
    /// Not ours to judge: a CORS preflight, or an undeclared route under
    /// [`Unmatched::PassThrough`].
    PassThrough,
    /// Answer with [`Rejection::into_response`] and do not call the handler.
    Deny(Rejection),
}

/// The `WWW-Authenticate` values, built once from the realm.
#[derive(Debug)]
struct Challenges {
    realm: String,
    missing: HeaderValue,
    invalid: HeaderValue,
    expired: HeaderValue,
}

impl Challenges {
    fn new(realm: &str) -> Self {
        // A quote or backslash would end the quoted string early; control
        // characters are not allowed in a header at all.
        let realm: String = realm.chars().filter(|c| !matches!(c, '"' | '\\') && !c.is_control()).collect();
        let value = |extra: &str| {
            HeaderValue::try_from(format!(r#"Bearer realm="{realm}"{extra}"#))
                .unwrap_or_else(|_| HeaderValue::from_static(r#"Bearer realm="api""#))
        };
        let described = |e: AuthError| format!(r#", error="invalid_token", error_description="{}""#, e.message());
        Challenges {
            missing: value(""),
            invalid: value(&described(AuthError::InvalidApiKey)),
            expired: value(&described(AuthError::ExpiredApiKey)),
            realm,
        }
    }

    fn for_error(&self, error: &AuthError) -> Option<HeaderValue> {
        match error {
            AuthError::MissingApiKey => Some(self.missing.clone()),
            AuthError::InvalidApiKey => Some(self.invalid.clone()),
            AuthError::ExpiredApiKey => Some(self.expired.clone()),
            AuthError::InsufficientScope { required } => HeaderValue::try_from(format!(
                r#"Bearer realm="{}", error="insufficient_scope", scope="{required}""#,
                self.realm
            ))
            .ok(),
            _ => None,
        }
    }
}

/// Runs the checks of contract §3 in order and renders refusals. Build one per
/// application with [`Authenticator::builder`] and share it behind an `Arc`.
pub struct Authenticator {
    store: Arc<dyn KeyStore>,
    directory: Arc<dyn Directory>,
    limiter: Arc<dyn RateLimiter>,
    ledger: Arc<dyn CreditLedger>,
    clock: Arc<dyn Clock>,
    hasher: KeyHasher,
    routes: Routes,
    limits: RateLimits,
    renderer: Arc<dyn ErrorRenderer>,
    challenges: Challenges,
    unavailable_retry_after: Duration,
    clients: ClientAddresses,
    /// The rate-limit field values of the default quotas, built once.
    fields: FieldValues,
    usage: Option<Arc<dyn UsageRecorder>>,
    observer: Option<Arc<dyn VerdictObserver>>,
    rng: SystemRandom,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").field("routes", &self.routes).field("limits", &self.limits).finish()
    }
}

/// Configures an [`Authenticator`]; every setting but the store and directory
/// has a default that matches the contract.
pub struct AuthenticatorBuilder {
    store: Arc<dyn KeyStore>,
    directory: Arc<dyn Directory>,
    limiter: Option<Arc<dyn RateLimiter>>,
    ledger: Option<Arc<dyn CreditLedger>>,
    clock: Arc<dyn Clock>,
    hasher: KeyHasher,
    routes: Routes,
    limits: RateLimits,
    renderer: Arc<dyn ErrorRenderer>,
    realm: String,
    unavailable_retry_after: Duration,
    clients: ClientAddresses,
    usage: Option<Arc<dyn UsageRecorder>>,
    observer: Option<Arc<dyn VerdictObserver>>,
}

impl AuthenticatorBuilder {
    /// How a client's address is found, for keys limited to networks.
    /// Default: the connection's ([`RequestHeaders::peer`]); no proxy trusted.
    pub fn client_addresses(mut self, clients: ClientAddresses) -> Self {
        self.clients = clients;
        self
    }

    /// Reports each verdict and its latency. Default: none.
    pub fn observer(mut self, observer: Arc<dyn VerdictObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Counts every admitted request (per key, day and class). Default: none.
    pub fn usage(mut self, recorder: Arc<dyn UsageRecorder>) -> Self {
        self.usage = Some(recorder);
        self
    }

    /// Default: an in-process [`GcraLimiter`].
    pub fn limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Where usage credits are counted. Default: an in-process
    /// [`MemoryLedger`], exact for one instance; instances sharing a store
    /// need a shared ledger (the Redis one) to share credits exactly.
    pub fn ledger(mut self, ledger: Arc<dyn CreditLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Default: [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Default: plain SHA-256. Every instance sharing a store must use the
    /// same hasher.
    pub fn hasher(mut self, hasher: KeyHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Default: [`Routes::agentix`].
    pub fn routes(mut self, routes: Routes) -> Self {
        self.routes = routes;
        self
    }

    /// Default: [`RateLimits::default`].
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Default: [`JsonEnvelope`].
    pub fn renderer(mut self, renderer: Arc<dyn ErrorRenderer>) -> Self {
        self.renderer = renderer;
        self
    }

    /// Default: `agentix`. Quotes, backslashes and control characters are
    /// dropped: they cannot appear in the challenge's quoted string.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// `Retry-After` on 503 `AUTH_UNAVAILABLE`. Default: 5 s.
    pub fn unavailable_retry_after(mut self, after: Duration) -> Self {
        self.unavailable_retry_after = after;
        self
    }

    pub fn build(self) -> Authenticator {
        let fields = FieldValues::new(self.routes.classes().map(|c| (c, self.limits.quota(c))));
        Authenticator {
            store: self.store,
            directory: self.directory,
            limiter: self.limiter.unwrap_or_else(|| Arc::new(GcraLimiter::new())),
            ledger: self.ledger.unwrap_or_else(|| Arc::new(MemoryLedger::new())),
            clock: self.clock,
            hasher: self.hasher,
            routes: self.routes,
            limits: self.limits,
            renderer: self.renderer,
            challenges: Challenges::new(&self.realm),
            unavailable_retry_after: self.unavailable_retry_after,
            clients: self.clients,
            fields,
            usage: self.usage,
            observer: self.observer,
            rng: SystemRandom::new(),
        }
    }
}

/// A refusal before rendering: the error and, once the key is known, its budget.
type Refusal = (AuthError, Option<RateLimitStatus>);

impl Authenticator {
    pub fn builder(store: Arc<dyn KeyStore>, directory: Arc<dyn Directory>) -> AuthenticatorBuilder {
        AuthenticatorBuilder {
            store,
            directory,
            limiter: None,
            ledger: None,
            clock: Arc::new(SystemClock),
            hasher: KeyHasher::default(),
            routes: Routes::agentix(),
            limits: RateLimits::default(),
            renderer: Arc::new(JsonEnvelope),
            realm: "agentix".to_owned(),
            unavailable_retry_after: Duration::from_secs(5),
            clients: ClientAddresses::default(),
            usage: None,
            observer: None,
        }
    }

    /// How this authenticator finds a client's address.
    pub fn client_addresses(&self) -> &ClientAddresses {
        &self.clients
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    pub(crate) fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    /// Judges a request a gateway holds (see [`original_request`](crate::original_request)
    /// for its method and path) and answers as that gateway expects: 200
    /// with the principal's headers and the rate-limit fields, 200 with
    /// nothing for a CORS preflight, or the refusal in `style`. The same
    /// verdict as [`Authenticator::authenticate`], so the same budget.
    pub async fn forward<H: RequestHeaders + ?Sized>(
        &self,
        method: &Method,
        path: &str,
        headers: &H,
        style: crate::GatewayStyle,
    ) -> Response<Bytes> {
        crate::forward::response(self.authenticate(method, path, headers).await, style)
    }

    /// Judges one request from its method, path (without the query: keys in
    /// URLs are never read) and headers.
    pub async fn authenticate<H: RequestHeaders + ?Sized>(&self, method: &Method, path: &str, headers: &H) -> Outcome {
        if method == Method::OPTIONS && headers.values(RequestHeader::AccessControlRequestMethod).next().is_some() {
            return Outcome::PassThrough;
        }
        let route = self.routes.classify(method, path);
        if route.is_none() && self.routes.unmatched_policy() == Unmatched::PassThrough {
            return Outcome::PassThrough;
        }
        self.judge(route, headers).await
    }

    /// Runs the checks on a classified request (`None`: undeclared) and
    /// tells the observer.
    pub(crate) async fn judge<H: RequestHeaders + ?Sized>(
        &self,
        route: Option<RouteMatch<'_, '_>>,
        headers: &H,
    ) -> Outcome {
        let started = self.observer.as_ref().map(|_| std::time::Instant::now());
        let outcome = match self.verify(route, headers).await {
            Ok(grant) => Outcome::Allow(grant),
            Err((error, status)) => Outcome::Deny(self.reject(error, status)),
        };
        if let (Some(observer), Some(started)) = (&self.observer, started) {
            let code = match &outcome {
                Outcome::Deny(r) => Some(r.error().code()),
                _ => None,
            };
            observer.observe(code, started.elapsed());
        }
        outcome
    }

    async fn verify<H: RequestHeaders + ?Sized>(
        &self,
        route: Option<RouteMatch<'_, '_>>,
        headers: &H,
    ) -> Result<Grant, Refusal> {
        // Steps 1 and 2: no I/O, and junk stops here.
        let token = extract_credential(headers).map_err(|e| match e {
            CredentialError::Missing => (AuthError::MissingApiKey, None),
            CredentialError::Invalid => (AuthError::InvalidApiKey, None),
        })?;
        let key = ApiKey::parse(token).map_err(|_| (AuthError::InvalidApiKey, None))?;
        // Step 3: one hash, one lookup.
        let hash = self.hasher.hash(&key);
        let record = self.store.find(&hash).await.map_err(|_| self.unavailable())?;
        let record = record.filter(|r| r.deleted_at.is_none()).ok_or((AuthError::InvalidApiKey, None))?;
        // Step 4: against the clock, every time.
        let now = self.clock.now();
        if record.is_expired(now) {
            return Err((AuthError::ExpiredApiKey, None));
        }
        // Step 4b: a key limited to networks, from where the client is. The
        // address is read only for such keys, so others pay nothing for it.
        if !record.allowed_networks.is_empty()
            && !network_allowed(self.clients.client(headers), &record.allowed_networks)
        {
            return Err(self.refused(&record, route.as_ref(), AuthError::NetworkNotAllowed, now).await);
        }
        let principal = Principal { record };
        let Some(route) = route else {
            return match self.routes.unmatched_policy() {
                Unmatched::Refuse => Err((AuthError::RouteNotFound, None)),
                Unmatched::Authenticate | Unmatched::PassThrough => {
                    Ok(Grant { principal, rate_limit: None, credits: None })
                }
            };
        };
        let record = &principal.record;
        let quota = self.quota_of(record, route.class);
        // Steps 5 to 8. A refusal here spends no budget but reports it.
        if let Err(error) = self.check_policy(record, &route, headers).await {
            return Err(self.refused(record, Some(&route), error, now).await);
        }
        // Step 9.
        let at = Timestamp::from(now);
        let status = match self.limiter.check(record.id, route.class, quota, at).await {
            Ok(RateDecision::Admit(status)) => status,
            Ok(RateDecision::Deny { status, retry_after }) => {
                self.count(record, route.class, UsageOutcome::RateLimited, at);
                return Err((AuthError::RateLimited { retry_after }, Some(status)));
            }
            Err(_) => return Err(self.unavailable()),
        };
        // Step 10: credits, once the limiter has admitted, so that a request
        // refused for its rate never spends one. A refusal here has spent
        // its rate budget: the key cannot be used until a refill anyway.
        let credits = match record.credits {
            Some(account) if route.cost > 0 => match self.ledger.spend(account, u64::from(route.cost), now).await {
                Ok(CreditDecision::Spent { remaining }) => Some(remaining),
                Ok(CreditDecision::Exhausted { .. }) => {
                    self.count(record, route.class, UsageOutcome::Refused, at);
                    return Err((AuthError::CreditsExhausted, Some(status)));
                }
                Err(_) => return Err(self.unavailable()),
            },
            // A free route (cost 0) asks the ledger nothing.
            _ => None,
        };
        self.count(record, route.class, UsageOutcome::Admitted, at);
        let policy = self.fields.policy(status.class, status.quota);
        let value = self.fields.tabled(&status);
        Ok(Grant { rate_limit: Some(GrantedLimit { policy, value, status }), principal, credits })
    }

    /// The usage credits the key has left now, spending none (`None`: the
    /// key is not counted). What an API says about a key's credits must
    /// come from here, so that it says what the verdict will find.
    pub async fn credits_remaining(&self, record: &KeyRecord) -> Result<Option<u64>, LedgerError> {
        match record.credits {
            Some(account) => self.ledger.remaining(account, self.clock.now()).await.map(Some),
            None => Ok(None),
        }
    }

    /// A refusal of a known key before step 9: with its route's budget,
    /// peeked (a refusal spends none; not when the store is down), and a
    /// 403 counted against the key.
    async fn refused(
        &self,
        record: &KeyRecord,
        route: Option<&RouteMatch<'_, '_>>,
        error: AuthError,
        now: std::time::SystemTime,
    ) -> Refusal {
        let Some(route) = route else { return (error, None) };
        let status = match error {
            AuthError::Unavailable { .. } => None,
            _ => self.limiter.peek(record.id, route.class, self.quota_of(record, route.class), now.into()).await.ok(),
        };
        if error.status() == http::StatusCode::FORBIDDEN {
            self.count(record, route.class, UsageOutcome::Refused, now.into());
        }
        (error, status)
    }

    fn count(&self, record: &KeyRecord, class: EndpointClass, outcome: UsageOutcome, at: Timestamp) {
        if let Some(usage) = &self.usage {
            usage.record(record.id, class, outcome, at);
        }
    }

    async fn check_policy<H: RequestHeaders + ?Sized>(
        &self,
        record: &KeyRecord,
        route: &RouteMatch<'_, '_>,
        headers: &H,
    ) -> Result<(), AuthError> {
        let down = |_: StoreError| AuthError::Unavailable { retry_after: self.unavailable_retry_after };
        // Steps 5, 6 and 6b; what step 8 will need.
        let allowed_domains = match route.resource {
            Resource::None => None,
            // An id no store can hold is not looked up (see `routable_id`).
            Resource::Agent(id) if !routable_id(id) => return Err(AuthError::AgentNotFound),
            Resource::Team(id) if !routable_id(id) => return Err(AuthError::TeamNotFound),
            Resource::Agent(id) => {
                let agent = self.directory.agent(id).await.map_err(down)?.ok_or(AuthError::AgentNotFound)?;
                if agent.org != record.org {
                    return Err(AuthError::OrgMismatch);
                }
                if !agent.active {
                    return Err(AuthError::AgentInactive);
                }
                if !agent.public {
                    return Err(AuthError::AgentNotPublic);
                }
                Some(agent)
            }
            Resource::Team(id) => {
                let team = self.directory.team(id).await.map_err(down)?.ok_or(AuthError::TeamNotFound)?;
                if team.org != record.org {
                    return Err(AuthError::OrgMismatch);
                }
                None
            }
        };
        // Step 7.
        if !record.has_scope(route.scope) {
            return Err(AuthError::InsufficientScope { required: route.scope.clone() });
        }
        // Step 8: only agents have a domain list.
        if let Some(agent) = allowed_domains
            && !agent.allowed_domains.is_empty()
            && headers.values(RequestHeader::Origin).any(|o| !origin_allowed(o, &agent.allowed_domains))
        {
            return Err(AuthError::DomainNotAllowed);
        }
        Ok(())
    }

    /// The quota that applies to a key in an endpoint class: its own
    /// override, or the authenticator's default for the class. What an API
    /// tells a client about its limits must come from here, so that it says
    /// what the limiter enforces.
    pub fn quota(&self, principal: &Principal, class: EndpointClass) -> Quota {
        self.quota_of(&principal.record, class)
    }

    fn quota_of(&self, record: &KeyRecord, class: EndpointClass) -> Quota {
        record.quota_override(class).unwrap_or_else(|| self.limits.quota(class))
    }

    /// The CORS decision: whether a browser page at `origin` may call this
    /// route. For a preflight (`OPTIONS` with `Access-Control-Request-Method`,
    /// given as `requested_method`) the route is the requested method's;
    /// otherwise the request's own.
    ///
    /// The answer follows the domain rule of the verdict: an agent with
    /// allowed domains admits only origins on them; an agent without a list,
    /// a team, and a declared route naming no agent admit any origin. A
    /// preflight carries no key, so it must not tell which agents exist any
    /// more than a keyless request does (401 for all): an unknown agent is
    /// answered like an agent without a list. An undeclared route, or a
    /// directory that cannot answer, gets `false` (nothing to allow, or fail
    /// closed). This never admits a request: the
    /// verdict still checks the key, the org and the domain.
    pub async fn cors_allows(
        &self,
        method: &Method,
        path: &str,
        origin: &[u8],
        requested_method: Option<&[u8]>,
    ) -> bool {
        let requested = match requested_method {
            Some(m) if method == Method::OPTIONS => match Method::from_bytes(m) {
                Ok(m) => m,
                Err(_) => return false,
            },
            _ => method.clone(),
        };
        let Some(route) = self.routes.classify(&requested, path) else { return false };
        match route.resource {
            Resource::Agent(id) if routable_id(id) => match self.directory.agent(id).await {
                Ok(Some(agent)) => agent.allowed_domains.is_empty() || origin_allowed(origin, &agent.allowed_domains),
                Ok(None) => true,
                Err(_) => false,
            },
            Resource::Agent(_) | Resource::Team(_) | Resource::None => true,
        }
    }

    fn unavailable(&self) -> Refusal {
        (AuthError::Unavailable { retry_after: self.unavailable_retry_after }, None)
    }

    /// The one place an error becomes a response.
    fn reject(&self, error: AuthError, status: Option<RateLimitStatus>) -> Rejection {
        let limit = status.map(|s| {
            let value = self.fields.tabled(&s).unwrap_or_else(|| ratelimit_value(&s));
            (s, self.fields.policy(s.class, s.quota), value)
        });
        Rejection::build(error, self.renderer.as_ref(), &self.challenges, limit)
    }

    /// Creates a key and returns it: the only moment its plaintext exists
    /// outside the client.
    pub async fn issue_key(&self, spec: KeySpec) -> Result<(ApiKey, Arc<KeyRecord>), StoreError> {
        let (key, record) = self.new_record(spec)?;
        let record = self.store.create(record).await?;
        Ok((key, record))
    }

    /// "Roll": a new key now, with the old one's name, scopes, mode, limits
    /// and lifetime (counted from now; none if the old key had none); the
    /// old one keeps working for `grace` and then expires.
    pub async fn roll_key(
        &self,
        org: &str,
        id: KeyId,
        grace: Duration,
    ) -> Result<Option<(ApiKey, Arc<KeyRecord>)>, StoreError> {
        let Some(old) = self.store.get(org, id).await? else { return Ok(None) };
        // Rolling is for a key in use; an expired one is replaced by a new
        // key, deliberately, not revived by a roll.
        let now = self.clock.now();
        if old.is_expired(now) {
            return Err(StoreError::Conflict("an expired key cannot be rolled; create a new key".into()));
        }
        // The new key lives as long as the old one was set to: a policy of
        // 90-day keys survives rotation, and a roll never mints a key that
        // never expires from one that would (where now + lifetime cannot be
        // represented, the old expiry stands).
        let spec = KeySpec {
            org: old.org.clone(),
            name: old.name.clone(),
            scopes: old.scopes.clone(),
            mode: old.mode,
            expires_at: old.lifetime.map(|l| now.checked_add(l).or(old.expires_at).unwrap_or(now)),
            rate_limits: old.rate_limits.clone(),
            allowed_networks: old.allowed_networks.clone(),
            credits: None,
        };
        let (key, mut record) = self.new_record(spec)?;
        // The same lineage and account, not a copy: the old key in its
        // grace period and the new one spend from one cell, and a roll
        // refills nothing. (The store takes both, and the limits, from the
        // old key as stored when it rolls.)
        record.credits = old.credits;
        record.lineage = old.lineage;
        let until = now
            .checked_add(grace)
            .ok_or(StoreError::Conflict("the grace period is longer than time can represent".into()))?;
        Ok(self.store.roll(org, id, record, until).await?.map(|r| (key, r)))
    }

    /// Changes a key's limits in place ([`KeyChange`]): its rate limits,
    /// networks or credits, now. Credits given again start afresh for the
    /// key and every live key sharing its account (a roll's other half), so
    /// the two still spend one balance. `None` when the org has no such
    /// live key.
    pub async fn update_key(&self, org: &str, id: KeyId, change: KeyChange) -> Result<Option<KeyUpdate>, StoreError> {
        self.store.update(org, id, &change, self.clock.now()).await
    }

    pub async fn delete_key(&self, org: &str, id: KeyId) -> Result<bool, StoreError> {
        self.store.delete(org, id, self.clock.now()).await
    }

    fn new_record(&self, spec: KeySpec) -> Result<(ApiKey, KeyRecord), StoreError> {
        let no_entropy = |_| StoreError::Unavailable("the system random generator failed".into());
        let key = ApiKey::generate(&self.rng, spec.mode).map_err(no_entropy)?;
        let id = KeyId::generate(&self.rng).map_err(no_entropy)?;
        let now = self.clock.now();
        let record = KeyRecord {
            id,
            org: spec.org,
            name: spec.name,
            hash: self.hasher.hash(&key),
            prefix: key.display_prefix(),
            scopes: spec.scopes,
            mode: spec.mode,
            created_at: now,
            expires_at: spec.expires_at,
            // An expiry already past is a lifetime of zero.
            lifetime: spec.expires_at.map(|at| at.duration_since(now).unwrap_or_default()),
            deleted_at: None,
            rate_limits: spec.rate_limits,
            allowed_networks: spec.allowed_networks,
            credits: spec.credits.map(|credits| CreditAccount::starting(credits, id, now)),
            lineage: id,
        };
        Ok((key, record))
    }
}
