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
        self.fingerprint == other.fingerprint && self.name == other.name
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

/// The classification of one request.
#[derive(Clone, Copy, Debug)]
pub struct RouteMatch<'r, 'p> {
    pub resource: Resource<'p>,
    pub scope: &'r Scope,
    pub class: EndpointClass,
}

/// What to do with a request that matches no declared route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Unmatched {
    /// Require a valid, current key (steps 1–4), with no scope and no rate
    /// limit. The safe default: a route someone forgot to declare is still
    /// behind a key.
    #[default]
    Authenticate,
    /// Let the request through untouched, for layers that wrap more than the
    /// protected API.
    PassThrough,
}

/// The most segments a route pattern may have; longer patterns are refused
/// by [`Routes::route`]'s caller contract and longer paths match nothing.
const MAX_SEGMENTS: usize = 16;

#[derive(Clone, Debug)]
enum Segment {
    Literal(Box<str>),
    Agent,
    Team,
    Param,
}

#[derive(Clone, Debug)]
struct RouteDef {
    method: Method,
    segments: Box<[Segment]>,
    scope: Scope,
    class: EndpointClass,
}

/// The route table. Patterns are paths with `{name}` segments; `{agentId}`
/// marks the segment naming an agent and `{teamId}` one naming a team, which
/// is what turns on the org, availability and domain checks.
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
        let mut r = Routes::new();
        for (method, path, scope, class) in [
            (Method::POST, "/agents/{agentId}/chat", Scope::CHAT, EndpointClass::CHAT),
            (Method::POST, "/teams/{teamId}/chat", Scope::CHAT, EndpointClass::CHAT),
            (Method::GET, "/agents/{agentId}", Scope::CONFIG, EndpointClass::CONFIG),
            (Method::GET, "/agents/{agentId}/widget", Scope::CONFIG, EndpointClass::CONFIG),
            (
                Method::GET,
                "/agents/{agentId}/conversations/{sessionId}",
                Scope::CONVERSATIONS,
                EndpointClass::CONVERSATIONS,
            ),
            (
                Method::PATCH,
                "/agents/{agentId}/conversations/{sessionId}",
                Scope::CONVERSATIONS,
                EndpointClass::CONVERSATIONS,
            ),
        ] {
            r = r.route(method, &format!("{BASE}{path}"), scope, class);
        }
        r
    }

    /// Declares a route. Later declarations of the same method and pattern
    /// never shadow earlier ones: the first match wins. Patterns have at most
    /// 16 segments.
    pub fn route(mut self, method: Method, pattern: &str, scope: Scope, class: EndpointClass) -> Self {
        let segments = pattern
            .trim_start_matches('/')
            .split('/')
            .map(|s| match s {
                "{agentId}" => Segment::Agent,
                "{teamId}" => Segment::Team,
                _ if s.starts_with('{') && s.ends_with('}') => Segment::Param,
                _ => Segment::Literal(s.into()),
            })
            .collect();
        self.routes.push(RouteDef { method, segments, scope, class });
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

    /// Every endpoint class some route uses.
    pub fn classes(&self) -> impl Iterator<Item = EndpointClass> + '_ {
        self.routes.iter().map(|r| r.class)
    }

    /// Classifies a request. `HEAD` matches `GET` routes, because frameworks
    /// answer `HEAD` with the `GET` handler: otherwise `HEAD` would be a way
    /// around the org and scope checks.
    pub fn classify<'r, 'p>(&'r self, method: &Method, path: &'p str) -> Option<RouteMatch<'r, 'p>> {
        let method = if method == Method::HEAD { &Method::GET } else { method };
        // Split the path once; no route is longer than MAX_SEGMENTS.
        let mut parts = [""; MAX_SEGMENTS];
        let mut len = 0;
        for part in path.strip_prefix('/')?.split('/') {
            *parts.get_mut(len)? = part;
            len += 1;
        }
        let parts = &parts[..len];
        'routes: for def in &self.routes {
            if def.method != *method || def.segments.len() != parts.len() {
                continue;
            }
            let mut resource = Resource::None;
            for (seg, &part) in def.segments.iter().zip(parts) {
                match seg {
                    Segment::Literal(lit) if **lit == *part => {}
                    Segment::Literal(_) => continue 'routes,
                    _ if part.is_empty() => continue 'routes,
                    Segment::Agent => resource = Resource::Agent(part),
                    Segment::Team => resource = Resource::Team(part),
                    Segment::Param => {}
                }
            }
            return Some(RouteMatch { resource, scope: &def.scope, class: def.class });
        }
        None
    }
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
            (Method::POST, "/api/public/agents//chat"),
            (Method::POST, "/api/public/agents/a1/chat/"),
            (Method::GET, "/api/public/agents"),
            (Method::GET, "api/public/agents/a1"),
            (Method::DELETE, "/api/public/agents/a1"),
        ] {
            assert!(r.classify(&m, p).is_none(), "{m} {p}");
        }
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
