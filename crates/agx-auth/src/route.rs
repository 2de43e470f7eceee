//! The endpoint classifier: method + path → (resource, required scope,
//! endpoint class). The Agentix routes of contract §7 are the default; a host
//! application declares its own with [`Routes::route`].

use std::borrow::Cow;
use std::fmt;

use http::Method;

/// A permission a key may hold. A key with no scopes holds them all.
/// The three Agentix scopes are constants; a host application can name its
/// own with [`Scope::new`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Scope(Cow<'static, str>);

impl Scope {
    pub const CHAT: Scope = Scope(Cow::Borrowed("chat"));
    pub const CONFIG: Scope = Scope(Cow::Borrowed("config"));
    pub const CONVERSATIONS: Scope = Scope(Cow::Borrowed("conversations"));

    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        Scope(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({})", self.0)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A rate-limit bucket: each key has one budget per class (contract §5). The
/// name is `&'static str` because classes are declared in code, and a `Copy`
/// class makes the limiter's key free to build.
#[derive(Clone, Copy, Eq)]
pub struct EndpointClass {
    name: &'static str,
    /// FNV-1a of the name, computed at compile time: the limiter hashes this
    /// word instead of the string on every check.
    fingerprint: u64,
}

impl EndpointClass {
    pub const CHAT: EndpointClass = EndpointClass::new("chat");
    pub const CONFIG: EndpointClass = EndpointClass::new("config");
    pub const CONVERSATIONS: EndpointClass = EndpointClass::new("conversations");

    /// A class of the host application's own. The name appears in the
    /// `RateLimit` fields, so keep it a plain token (letters, digits, `-`, `_`).
    pub const fn new(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        let mut i = 0;
        while i < bytes.len() {
            hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        EndpointClass { name, fingerprint: hash }
    }

    pub const fn as_str(self) -> &'static str {
        self.name
    }

    /// FNV-1a of the name.
    pub const fn fingerprint(self) -> u64 {
        self.fingerprint
    }
}

impl PartialEq for EndpointClass {
    fn eq(&self, other: &Self) -> bool {
        // The same constant is usually the same pointer, which spares the
        // comparison of the names on the hot path (fields and quotas look a
        // class up on every verdict).
        self.fingerprint == other.fingerprint && (std::ptr::eq(self.name, other.name) || self.name == other.name)
    }
}

/// Consistent with `Eq`: equal names have equal fingerprints.
impl std::hash::Hash for EndpointClass {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.fingerprint);
    }
}

impl fmt::Debug for EndpointClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EndpointClass({})", self.name)
    }
}

/// What a route acts on. Steps 5, 6, 6b and 8 of the contract apply only when
/// a route names an agent or a team.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource<'p> {
    Agent(&'p str),
    Team(&'p str),
    None,
}

/// The operation names of [`Routes::agentix`].
pub mod ops {
    pub const AGENT_CHAT: &str = "agentChat";
    pub const TEAM_CHAT: &str = "teamChat";
    pub const AGENT_CONFIG: &str = "getAgent";
    pub const AGENT_WIDGET: &str = "getWidget";
    pub const GET_CONVERSATION: &str = "getConversation";
    pub const PATCH_CONVERSATION: &str = "patchConversation";
}

/// The classification of one request.
#[derive(Clone, Copy, Debug)]
pub struct RouteMatch<'r, 'p> {
    pub resource: Resource<'p>,
    pub scope: &'r Scope,
    pub class: EndpointClass,
    /// The usage credits an admitted request spends, for keys that carry
    /// credits ([`Routes::costing`]; 1 unless declared).
    pub cost: u32,
}

/// What to do with a request that matches no declared route (a path or a
/// method the table does not list, such as `/chat/`, `/CHAT` or `DELETE` on
/// a `GET` route).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Unmatched {
    /// Require a valid, current key (steps 1–4), then refuse with 404
    /// [`NOT_FOUND`](crate::AuthError::RouteNotFound). The default, because
    /// it is safe whatever routes the request next: a router that ignores
    /// case or trailing slashes (Express does by default; so does a
    /// path-normalising layer in front of axum), behind a gateway or in
    /// process, would otherwise hand `/CHAT` to the chat handler with no
    /// scope, domain or rate limit checked. The key comes first so that a
    /// caller without one cannot probe which paths exist.
    #[default]
    Refuse,
    /// Require a valid, current key (steps 1–4), with no scope, no rate
    /// limit and no usage credits spent or checked, and let the router
    /// answer: for an application that puts every
    /// route behind a key and trusts its router to route exactly as the
    /// table does.
    Authenticate,
    /// Let the request through untouched, for layers that wrap more than the
    /// protected API.
    PassThrough,
}

/// The most segments a route pattern may have; longer patterns are refused
/// by [`Routes::route`]'s caller contract and longer paths match nothing.
const MAX_SEGMENTS: usize = 16;

/// The longest resource id the classifier accepts: see [`routable_id`].
pub const MAX_RESOURCE_ID_LEN: usize = 64;

/// Whether `id` can name an agent or a team in a path: 1 to
/// [`MAX_RESOURCE_ID_LEN`] ASCII letters, digits, `-` or `_`.
///
/// Why a rule at all: the classifier reads the raw path, while a router
/// percent-decodes its parameters. With `%`, `.` or an empty segment in an
/// id, the two could read one request as two different agents, or the router
/// could call a handler for a path the classifier did not recognise. Ids
/// that obey this rule read the same to both. A request naming an id outside
/// it is refused as not found (the agent cannot exist: stores are written
/// through the same rule), after the key is checked and without a lookup.
pub fn routable_id(id: &str) -> bool {
    (1..=MAX_RESOURCE_ID_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// [`routable_id`] as a JSON Schema pattern, for API descriptions.
pub const ROUTABLE_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// The parameter name that marks a segment naming an agent.
pub const AGENT_PARAM: &str = "agentId";
/// The parameter name that marks a segment naming a team.
pub const TEAM_PARAM: &str = "teamId";

#[derive(Clone, Debug)]
enum Segment {
    Literal(Box<str>),
    Agent,
    Team,
    Param(Box<str>),
}

#[derive(Clone, Debug)]
struct RouteDef {
    method: Method,
    pattern: Box<str>,
    segments: Box<[Segment]>,
    scope: Scope,
    class: EndpointClass,
    operation: Option<&'static str>,
    cost: u32,
}

/// One declared route, as [`Routes::iter`] shows it: what a router and an
/// API description are built from.
#[derive(Clone, Copy, Debug)]
pub struct RouteInfo<'r> {
    def: &'r RouteDef,
}

impl<'r> RouteInfo<'r> {
    pub fn method(&self) -> &'r Method {
        &self.def.method
    }

    /// The pattern as declared, with `{name}` parameters: the syntax axum
    /// 0.8 routes with, so the pattern can be handed to a router as it is.
    pub fn pattern(&self) -> &'r str {
        &self.def.pattern
    }

    pub fn scope(&self) -> &'r Scope {
        &self.def.scope
    }

    pub fn class(&self) -> EndpointClass {
        self.def.class
    }

    /// The operation's name (an OpenAPI `operationId`), if it was given one
    /// with [`Routes::named`].
    pub fn operation(&self) -> Option<&'static str> {
        self.def.operation
    }

    /// The usage credits a request to this route spends ([`Routes::costing`]).
    pub fn cost(&self) -> u32 {
        self.def.cost
    }

    /// The path parameters' names, in order.
    pub fn params(&self) -> impl Iterator<Item = &'r str> + 'r {
        self.def.segments.iter().filter_map(|s| match s {
            Segment::Literal(_) => None,
            Segment::Agent => Some(AGENT_PARAM),
            Segment::Team => Some(TEAM_PARAM),
            Segment::Param(name) => Some(&**name),
        })
    }

    /// What the route acts on: an agent, a team, or neither.
    pub fn resource_kind(&self) -> ResourceKind {
        self.def.segments.iter().fold(ResourceKind::None, |kind, s| match s {
            Segment::Agent => ResourceKind::Agent,
            Segment::Team => ResourceKind::Team,
            _ => kind,
        })
    }
}

/// Which kind of resource a route names, without the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Agent,
    Team,
    None,
}

/// The route table. Patterns are paths with `{name}` segments; `{agentId}`
/// marks the segment naming an agent and `{teamId}` one naming a team, which
/// is what turns on the org, availability and domain checks.
///
/// It is the one list of the protected routes: the reference server builds
/// its router and its OpenAPI paths from it, and the conformance apps route
/// from it, so that a router and the classifier cannot disagree about which
/// paths exist.
#[derive(Clone, Debug)]
pub struct Routes {
    routes: Vec<RouteDef>,
    unmatched: Unmatched,
}

impl Default for Routes {
    fn default() -> Self {
        Routes::agentix()
    }
}

impl Routes {
    /// An empty table; every request is then [`Unmatched`].
    pub fn new() -> Self {
        Routes { routes: Vec::new(), unmatched: Unmatched::default() }
    }

    /// The Agentix Public API (contract §7).
    pub fn agentix() -> Self {
        const BASE: &str = "/api/public";
        const CONVERSATION: &str = "/agents/{agentId}/conversations/{sessionId}";
        let mut r = Routes::new();
        for (op, method, path, scope, class) in [
            (ops::AGENT_CHAT, Method::POST, "/agents/{agentId}/chat", Scope::CHAT, EndpointClass::CHAT),
            (ops::TEAM_CHAT, Method::POST, "/teams/{teamId}/chat", Scope::CHAT, EndpointClass::CHAT),
            (ops::AGENT_CONFIG, Method::GET, "/agents/{agentId}", Scope::CONFIG, EndpointClass::CONFIG),
            (ops::AGENT_WIDGET, Method::GET, "/agents/{agentId}/widget", Scope::CONFIG, EndpointClass::CONFIG),
            (ops::GET_CONVERSATION, Method::GET, CONVERSATION, Scope::CONVERSATIONS, EndpointClass::CONVERSATIONS),
            (ops::PATCH_CONVERSATION, Method::PATCH, CONVERSATION, Scope::CONVERSATIONS, EndpointClass::CONVERSATIONS),
        ] {
            r = r.route(method, &format!("{BASE}{path}"), scope, class).named(op);
        }
        r
    }

    /// Names the route declared last (its OpenAPI `operationId`), so that a
    /// router built from the table can find the handler for it.
    pub fn named(mut self, operation: &'static str) -> Self {
        if let Some(last) = self.routes.last_mut() {
            last.operation = Some(operation);
        }
        self
    }

    /// Sets what a request to the route declared last spends of a key's
    /// usage credits (default 1; 0 makes the route free for such keys): a
    /// chat turn that costs a model call can cost more than reading a
    /// configuration.
    pub fn costing(mut self, cost: u32) -> Self {
        if let Some(last) = self.routes.last_mut() {
            last.cost = cost;
        }
        self
    }

    /// Every declared route, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = RouteInfo<'_>> {
        self.routes.iter().map(|def| RouteInfo { def })
    }

    /// Declares a route. Later declarations of the same method and pattern
    /// never shadow earlier ones: the first match wins. Patterns have at most
    /// 16 segments.
    pub fn route(mut self, method: Method, pattern: &str, scope: Scope, class: EndpointClass) -> Self {
        let segments = pattern
            .trim_start_matches('/')
            .split('/')
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(AGENT_PARAM) => Segment::Agent,
                Some(TEAM_PARAM) => Segment::Team,
                Some(name) => Segment::Param(name.into()),
                None => Segment::Literal(s.into()),
            })
            .collect();
        self.routes.push(RouteDef {
            method,
            pattern: pattern.into(),
            segments,
            scope,
            class,
            operation: None,
            cost: 1,
        });
        self
    }

    pub fn unmatched(mut self, policy: Unmatched) -> Self {
        self.unmatched = policy;
        self
    }

    pub fn unmatched_policy(&self) -> Unmatched {
        self.unmatched
    }

    /// Every scope some route requires: what a key may be granted.
    pub fn scopes(&self) -> impl Iterator<Item = &Scope> {
        let mut seen: Vec<&Scope> = Vec::new();
        for r in &self.routes {
            if !seen.contains(&&r.scope) {
                seen.push(&r.scope);
            }
        }
        seen.into_iter()
    }

    /// Every endpoint class some route uses, each once, in table order.
    pub fn classes(&self) -> impl Iterator<Item = EndpointClass> + '_ {
        self.routes
            .iter()
            .enumerate()
            .filter(|(i, r)| !self.routes[..*i].iter().any(|o| o.class == r.class))
            .map(|(_, r)| r.class)
    }

    /// The declared scope of this name, if some route requires it.
    pub fn scope_named(&self, name: &str) -> Option<&Scope> {
        self.routes.iter().map(|r| &r.scope).find(|s| s.as_str() == name)
    }

    /// The declared endpoint class of this name, if some route uses it: a
    /// name from outside (a verify call) can only reach a budget the table
    /// declares, never open a new one.
    pub fn class_named(&self, name: &str) -> Option<EndpointClass> {
        self.routes.iter().map(|r| r.class).find(|c| c.as_str() == name)
    }

    /// The scope and class of these names when some declared route requires
    /// that scope in that class: a permission asked for from outside is one
    /// the table grants somewhere, so that a key cannot be judged for one
    /// scope against another class's budget (`chat` on the larger `config`
    /// budget, say). It costs the most any such route costs: a permission
    /// names no route, so it must not be a cheaper way to one.
    pub fn permission(&self, scope: &str, class: &str) -> Option<(&Scope, EndpointClass, u32)> {
        let mut matching = self.routes.iter().filter(|r| r.scope.as_str() == scope && r.class.as_str() == class);
        let first = matching.next()?;
        let cost = matching.fold(first.cost, |most, r| most.max(r.cost));
        Some((&first.scope, first.class, cost))
    }

    /// Classifies a request. `HEAD` matches `GET` routes, because frameworks
    /// answer `HEAD` with the `GET` handler: otherwise `HEAD` would be a way
    /// around the org and scope checks.
    pub fn classify<'r, 'p>(&'r self, method: &Method, path: &'p str) -> Option<RouteMatch<'r, 'p>> {
        let method = if method == Method::HEAD { &Method::GET } else { method };
        // Split the path once; no route is longer than MAX_SEGMENTS.
        // A byte loop rather than `str::split`, which calls `memchr` once
        // per segment of a few bytes.
        let rest = path.strip_prefix('/')?;
        let mut parts = [""; MAX_SEGMENTS];
        let mut len = 0;
        let mut start = 0;
        for (i, &b) in rest.as_bytes().iter().enumerate() {
            if b == b'/' {
                // `/` is ASCII, so `start..i` lies on character boundaries.
                *parts.get_mut(len)? = rest.get(start..i)?;
                len += 1;
                start = i + 1;
            }
        }
        *parts.get_mut(len)? = rest.get(start..)?;
        len += 1;
        let parts = &parts[..len];
        'routes: for def in &self.routes {
            if def.segments.len() != parts.len() || def.method != *method {
                continue;
            }
            let mut resource = Resource::None;
            for (seg, &part) in def.segments.iter().zip(parts) {
                match seg {
                    Segment::Literal(lit) if short_eq(lit.as_bytes(), part.as_bytes()) => {}
                    Segment::Literal(_) => continue 'routes,
                    // An empty parameter still matches: routers call the
                    // handler for `/agents//chat`, so the classifier must
                    // see that route too (and refuse the empty id).
                    Segment::Agent => resource = Resource::Agent(part),
                    Segment::Team => resource = Resource::Team(part),
                    Segment::Param(_) => {}
                }
            }
            return Some(RouteMatch { resource, scope: &def.scope, class: def.class, cost: def.cost });
        }
        None
    }
}

/// Byte equality inlined for the few bytes of a path segment, where `==`
/// on `str` calls `memcmp`.
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(true, |eq, (x, y)| eq & (x == y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agentix_routes_classify() {
        let r = Routes::agentix();
        let m = r.classify(&Method::POST, "/api/public/agents/a1/chat").unwrap();
        assert_eq!(m.resource, Resource::Agent("a1"));
        assert_eq!(m.scope, &Scope::CHAT);
        assert_eq!(m.class, EndpointClass::CHAT);
        let m = r.classify(&Method::POST, "/api/public/teams/t1/chat").unwrap();
        assert_eq!(m.resource, Resource::Team("t1"));
        let m = r.classify(&Method::HEAD, "/api/public/agents/a1/widget").unwrap();
        assert_eq!(m.class, EndpointClass::CONFIG);
        let m = r.classify(&Method::PATCH, "/api/public/agents/a1/conversations/s1").unwrap();
        assert_eq!(m.scope, &Scope::CONVERSATIONS);
    }

    #[test]
    fn near_misses_do_not_match() {
        let r = Routes::agentix();
        for (m, p) in [
            (Method::GET, "/api/public/agents/a1/chat"),
            (Method::POST, "/api/public/agents/a1/chat/"),
            (Method::GET, "/api/public/agents"),
            (Method::GET, "api/public/agents/a1"),
            (Method::DELETE, "/api/public/agents/a1"),
        ] {
            assert!(r.classify(&m, p).is_none(), "{m} {p}");
        }
    }

    #[test]
    fn empty_ids_match_their_route() {
        let r = Routes::agentix();
        let m = r.classify(&Method::POST, "/api/public/agents//chat").unwrap();
        assert_eq!(m.resource, Resource::Agent(""));
        let m = r.classify(&Method::POST, "/api/public/teams//chat").unwrap();
        assert_eq!(m.resource, Resource::Team(""));
        let m = r.classify(&Method::GET, "/api/public/agents//conversations/s1").unwrap();
        assert_eq!((m.resource, m.class), (Resource::Agent(""), EndpointClass::CONVERSATIONS));
        let m = r.classify(&Method::GET, "/api/public/agents/a1/conversations/").unwrap();
        assert_eq!(m.resource, Resource::Agent("a1"));
    }

    #[test]
    fn routable_ids() {
        for id in ["a1", "demo-agent", "A_b-9", &"x".repeat(64)] {
            assert!(routable_id(id), "{id}");
        }
        for id in ["", "a%31", "a.b", "..", "é", "a b", &"x".repeat(65)] {
            assert!(!routable_id(id), "{id}");
        }
        assert_eq!(ROUTABLE_ID_PATTERN, format!("^[A-Za-z0-9_-]{{1,{MAX_RESOURCE_ID_LEN}}}$"));
    }

    #[test]
    fn the_table_describes_itself() {
        let r = Routes::agentix();
        let all: Vec<_> = r.iter().map(|i| (i.method().clone(), i.pattern(), i.operation())).collect();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0], (Method::POST, "/api/public/agents/{agentId}/chat", Some(ops::AGENT_CHAT)));
        let conv = r.iter().find(|i| i.operation() == Some(ops::PATCH_CONVERSATION)).unwrap();
        assert_eq!(conv.params().collect::<Vec<_>>(), ["agentId", "sessionId"]);
        assert_eq!(conv.resource_kind(), ResourceKind::Agent);
        let team = r.iter().find(|i| i.operation() == Some(ops::TEAM_CHAT)).unwrap();
        assert_eq!(team.resource_kind(), ResourceKind::Team);
    }

    #[test]
    fn host_routes_and_scopes() {
        let reports = Scope::new("reports");
        let r = Routes::new().route(Method::GET, "/v1/reports/{id}", reports.clone(), EndpointClass::new("reports"));
        let m = r.classify(&Method::GET, "/v1/reports/42").unwrap();
        assert_eq!(m.resource, Resource::None);
        assert_eq!(m.scope, &reports);
        assert_eq!(r.scopes().collect::<Vec<_>>(), vec![&reports]);
        assert_eq!(Routes::agentix().scopes().count(), 3);
    }
}
