//! `agx-http-bench FRAMEWORK VARIANT ADDR` serves `GET
//! /api/public/agents/{agent_id}` answering `hello`, on one worker thread:
//!
//! - `bare`: the handler alone;
//! - `auth`: behind agx-auth (a valid key, memory store, in-process GCRA);
//! - `auth-redis` (axum only): the same with the Redis limiter, on
//!   `AGX_REDIS_URL` or the local Redis: one script call per request;
//! - `auth-redis-lease` (axum only): the Redis limiter with leases of up to
//!   64 slots (the one key is hot, so most verdicts need no Redis call);
//! - `governor`: behind the framework's governor rate limiter (`tower_governor`
//!   for axum, `actix-governor` for actix-web; poem has none).
//!
//! With `auth` it prints `KEY=<key>` first, for the load generator. Quotas are
//! set so high that every request is admitted: what is measured is the cost
//! of the check, not of refusals.

use std::num::NonZeroU32;
use std::sync::Arc;

use agx_auth::{AgentRecord, Authenticator, EndpointClass, KeySpec, MemoryStore, Quota, RateLimits};
use agx_auth_redis::{LeaseSettings, RedisLimiter, RedisSettings, Spending};

const PATH: &str = "/api/public/agents/{agent_id}";

/// The authenticator and a key for it. Built on the runtime that will serve,
/// because the Redis limiter's connection lives on that runtime.
fn authenticator(
    rt: &tokio::runtime::Runtime,
    redis: Option<Spending>,
) -> Result<(Arc<Authenticator>, String), String> {
    let store = Arc::new(MemoryStore::new());
    store.insert_org("org_1", "Bench");
    store.insert_agent(AgentRecord::new("agent_1", "org_1", "Bench"));
    let limits = RateLimits::default().with(EndpointClass::CONFIG, Quota::per_minute(NonZeroU32::MAX));
    let mut builder = Authenticator::builder(store.clone(), store).rate_limits(limits);
    if let Some(spending) = redis {
        let url = std::env::var("AGX_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let prefix = format!("agx-bench:{}", std::process::id());
        let settings = RedisSettings { prefix, spending, ..RedisSettings::default() };
        let limiter = rt.block_on(RedisLimiter::connect(&url, settings)).map_err(|e| e.to_string())?;
        builder = builder.limiter(Arc::new(limiter));
    }
    let auth = Arc::new(builder.build());
    let (key, _) = rt.block_on(auth.issue_key(KeySpec::new("org_1", "bench"))).map_err(|e| e.to_string())?;
    Ok((auth, key.expose_secret().to_owned()))
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [framework, variant, addr] = args.as_slice() else {
        return Err(
            "usage: agx-http-bench axum|actix-web|poem bare|auth|auth-redis|auth-redis-lease|governor ADDR".into()
        );
    };
    let rt = current_thread().map_err(|e| e.to_string())?;
    if variant.starts_with("auth-redis") && framework != "axum" {
        return Err("the Redis variants are measured on axum only".into());
    }
    let auth = match variant.as_str() {
        "auth" | "auth-redis" | "auth-redis-lease" => {
            let redis = match variant.as_str() {
                "auth-redis" => Some(Spending::Exact),
                "auth-redis-lease" => Some(Spending::Leased(LeaseSettings::default())),
                _ => None,
            };
            let (auth, key) = authenticator(&rt, redis)?;
            println!("KEY={key}");
            Some(auth)
        }
        "bare" | "governor" => None,
        other => return Err(format!("unknown variant {other}")),
    };
    let governor = variant == "governor";
    match framework.as_str() {
        "axum" => axum_server(&rt, addr, auth, governor),
        "actix-web" => actix_server(addr, auth, governor),
        "poem" if governor => Err(std::io::Error::other("poem has no governor middleware")),
        "poem" => poem_server(addr, auth),
        other => Err(std::io::Error::other(format!("unknown framework {other}"))),
    }
    .map_err(|e| e.to_string())
}

fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

fn axum_server(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    auth: Option<Arc<Authenticator>>,
    governor: bool,
) -> std::io::Result<()> {
    use axum::Router;
    use axum::routing::get;
    use tower_governor::{GovernorLayer, governor::GovernorConfigBuilder, key_extractor::GlobalKeyExtractor};

    let mut app = Router::new().route(PATH, get(|| async { "hello" }));
    if let Some(auth) = auth {
        app = app.layer(agx_auth_axum::AuthLayer::new(auth));
    }
    if governor {
        let config = GovernorConfigBuilder::default()
            .per_nanosecond(1)
            .burst_size(u32::MAX)
            .key_extractor(GlobalKeyExtractor)
            .finish()
            .ok_or_else(|| std::io::Error::other("governor config"))?;
        app = app.layer(GovernorLayer::new(Arc::new(config)));
    }
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        axum::serve(listener, app).await
    })
}

fn actix_server(addr: &str, auth: Option<Arc<Authenticator>>, governor: bool) -> std::io::Result<()> {
    use actix_governor::{GlobalKeyExtractor, Governor, GovernorConfigBuilder};
    use actix_web::{App, HttpServer, web};

    fn routes(cfg: &mut web::ServiceConfig) {
        cfg.route(PATH, web::get().to(|| async { "hello" }));
    }

    let config = GovernorConfigBuilder::default()
        .nanoseconds_per_request(1)
        .burst_size(u32::MAX)
        .key_extractor(GlobalKeyExtractor)
        .finish()
        .ok_or_else(|| std::io::Error::other("governor config"))?;
    let addr = addr.to_owned();
    actix_web::rt::System::new().block_on(async move {
        let server = match (auth, governor) {
            (Some(auth), _) => {
                HttpServer::new(move || App::new().wrap(agx_auth_actix::AgxAuth::new(auth.clone())).configure(routes))
                    .workers(1)
                    .disable_signals()
                    .bind(addr)?
                    .run()
            }
            (None, true) => HttpServer::new(move || App::new().wrap(Governor::new(&config)).configure(routes))
                .workers(1)
                .disable_signals()
                .bind(addr)?
                .run(),
            (None, false) => {
                HttpServer::new(|| App::new().configure(routes)).workers(1).disable_signals().bind(addr)?.run()
            }
        };
        server.await
    })
}

fn poem_server(addr: &str, auth: Option<Arc<Authenticator>>) -> std::io::Result<()> {
    use poem::{EndpointExt, Route, Server, get, handler, listener::TcpListener};

    #[handler]
    fn hello() -> &'static str {
        "hello"
    }

    let route = Route::new().at("/api/public/agents/:agent_id", get(hello));
    current_thread()?.block_on(async {
        let listener = TcpListener::bind(addr.to_owned());
        match auth {
            Some(auth) => Server::new(listener).run(route.with(agx_auth_poem::AgxAuth::new(auth))).await,
            None => Server::new(listener).run(route).await,
        }
    })
}
