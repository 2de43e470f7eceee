//! `--routes FILE`: a host's own route table, for forward auth in front of
//! services that are not the Agentix API. The file only declares routes;
//! what a route means (which checks its `{agentId}` or `{teamId}` turns on,
//! how scopes and classes are judged) is the core's, as for the built-in
//! table.
//!
//! ```toml
//! unmatched = "refuse"   # the default; or "authenticate", or "pass-through"
//!
//! [[route]]
//! method = "POST"
//! path = "/v1/agents/{agentId}/run"
//! scope = "run"
//! class = "run"
//! cost = 5               # usage credits a request spends; default 1, 0 is free
//!
//! [[class]]
//! name = "run"
//! per_minute = 30
//! ```

use std::num::NonZeroU32;

use agx_auth::{EndpointClass, Quota, RateLimits, Routes, Scope, Unmatched};
use anyhow::{Context, bail};
use http::Method;
use serde::Deserialize;

/// The most routes a file may declare: a table is read on every request.
const MAX_ROUTES: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    unmatched: UnmatchedSetting,
    #[serde(default, rename = "route")]
    routes: Vec<Route>,
    #[serde(default, rename = "class")]
    classes: Vec<Class>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
enum UnmatchedSetting {
    #[default]
    Refuse,
    Authenticate,
    PassThrough,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Route {
    method: String,
    path: String,
    scope: String,
    class: String,
    #[serde(default = "one")]
    cost: u32,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Class {
    name: String,
    per_minute: NonZeroU32,
}

/// The routes and the quotas of the file at `path`.
pub fn load(path: &str) -> anyhow::Result<(Routes, RateLimits)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read the routes file {path}"))?;
    parse(&text).with_context(|| format!("the routes file {path}"))
}

/// The routes and quotas `text` declares.
pub fn parse(text: &str) -> anyhow::Result<(Routes, RateLimits)> {
    let file: File = toml::from_str(text)?;
    if file.routes.is_empty() {
        bail!("it declares no [[route]]");
    }
    if file.routes.len() > MAX_ROUTES {
        bail!("it declares {} routes; at most {MAX_ROUTES}", file.routes.len());
    }
    let mut routes = Routes::new().unmatched(match file.unmatched {
        UnmatchedSetting::Refuse => Unmatched::Refuse,
        UnmatchedSetting::Authenticate => Unmatched::Authenticate,
        UnmatchedSetting::PassThrough => Unmatched::PassThrough,
    });
    let mut limits = RateLimits::default();
    for (i, class) in file.classes.iter().enumerate() {
        let name = checked_name(&class.name).with_context(|| format!("[[class]] {}", i + 1))?;
        limits = limits.with(class_named(name), Quota::per_minute(class.per_minute));
    }
    for (i, r) in file.routes.into_iter().enumerate() {
        let at = || format!("[[route]] {}", i + 1);
        let method = Method::from_bytes(r.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| anyhow::anyhow!("the method is not an HTTP method"))
            .with_context(at)?;
        if !r.path.starts_with('/') || r.path.split('/').count() > 17 || !r.path.is_ascii() {
            bail!("{}: the path must start with `/`, be ASCII and have at most 16 segments", at());
        }
        let scope = checked_name(&r.scope).with_context(at)?;
        let class = checked_name(&r.class).with_context(at)?;
        routes = routes.route(method, &r.path, Scope::new(scope.to_owned()), class_named(class)).costing(r.cost);
    }
    Ok((routes, limits))
}

/// Scope and class names: what a key's scopes and a `RateLimit` field can carry.
fn checked_name(name: &str) -> anyhow::Result<&str> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if !ok {
        bail!("a scope or class name is 1 to 64 of A-Z a-z 0-9 - _ . :");
    }
    Ok(name)
}

/// Endpoint classes name themselves for the life of the process (the
/// limiter keys cells by them); a file's few names are kept that long.
fn class_named(name: &str) -> EndpointClass {
    match name {
        "chat" => EndpointClass::CHAT,
        "config" => EndpointClass::CONFIG,
        "conversations" => EndpointClass::CONVERSATIONS,
        other => EndpointClass::new(Box::leak(other.to_owned().into_boxed_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_declares_routes_their_checks_and_quotas() {
        let (routes, limits) = parse(
            r#"
            unmatched = "pass-through"
            [[route]]
            method = "post"
            path = "/v1/agents/{agentId}/run"
            scope = "run"
            class = "run"
            cost = 5
            [[route]]
            method = "GET"
            path = "/v1/status"
            scope = "config"
            class = "config"
            [[class]]
            name = "run"
            per_minute = 30
            "#,
        )
        .unwrap();
        let m = routes.classify(&Method::POST, "/v1/agents/a1/run").unwrap();
        assert_eq!(m.scope.as_str(), "run");
        assert_eq!(m.class.as_str(), "run");
        assert_eq!(m.cost, 5);
        assert_eq!(routes.classify(&Method::GET, "/v1/status").map(|m| m.cost), Some(1), "the default");
        assert_eq!(limits.quota(m.class), Quota::per_minute(NonZeroU32::new(30).unwrap()));
        assert!(routes.classify(&Method::GET, "/v1/status").is_some());
        assert_eq!(routes.unmatched_policy(), Unmatched::PassThrough);
    }

    #[test]
    fn a_bad_file_is_a_clear_error_naming_the_entry() {
        let bad = |text: &str| match parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(bad("").contains("no [[route]]"));
        let route = |fields: &str| format!("[[route]]\n{fields}\n");
        let e = bad(&route(
            r#"method = "G E T"
path = "/a"
scope = "s"
class = "c""#,
        ));
        assert!(e.contains("[[route]] 1") && e.contains("not an HTTP method"), "{e}");
        let e = bad(&route(
            r#"method = "GET"
path = "a"
scope = "s"
class = "c""#,
        ));
        assert!(e.contains("must start with `/`"), "{e}");
        let e = bad(&route(
            r#"method = "GET"
path = "/a"
scope = "s p a c e"
class = "c""#,
        ));
        assert!(e.contains("scope or class name"), "{e}");
        assert!(
            bad("[[route]]\nmethod = \"GET\"\npath = \"/a\"\nscope = \"s\"\nclass = \"c\"\nextra = 1")
                .contains("extra")
        );
    }
}
