//! Prometheus metrics through `prometheus-client`: the crate names, types
//! and encodes them; what a request touches is a handful of atomics, made
//! before the first request, so the hot path takes no lock and allocates
//! nothing.
//!
//! The one type of our own is [`LatencyHistogram`]: `prometheus-client`'s
//! `Histogram` takes a write lock per observation, on every verdict. Ours is
//! one atomic add per bucket hit, and the crate's encoder writes it out.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agx_auth::{AuthError, VerdictObserver};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet, text::encode,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Upper bounds of the verdict latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.000_002, 0.000_005, 0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.1];

/// The statuses counted under their own label; any other is `other`.
const STATUSES: [u16; 17] = [200, 201, 204, 400, 401, 403, 404, 405, 408, 409, 413, 429, 431, 500, 503, 504, 0];

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// What the state sees at scrape time (caches, the Redis limiter), read
/// then, not counted per request.
pub trait Gauges: Send + Sync + 'static {
    /// Key cache (hits, misses), when there is a cache.
    fn cache(&self) -> Option<(u64, u64)>;
    /// (in an outage now, outages since start), when Redis limits.
    fn limiter(&self) -> Option<(bool, u64)>;
    /// The filter of known keys (keys it holds, `None` while it loads;
    /// lookups it refused; lookups it passed to the store), when there is one.
    fn filter(&self) -> Option<(Option<u64>, u64, u64)> {
        None
    }
}

pub struct Metrics {
    registry: Registry,
    /// Per route (by index), per status (by index in [`STATUSES`]).
    requests: Vec<[Counter; STATUSES.len()]>,
    routes: HashMap<String, usize, foldhash::fast::RandomState>,
    /// Per [`AuthError::all_docs`] entry, then `ALLOWED` last.
    verdicts: Vec<(&'static str, Counter)>,
    rate_limited: Counter,
    latency: LatencyHistogram,
    audit_failures: Counter,
}

impl Metrics {
    /// Metrics for a server that routes `routes` (router patterns); the
    /// counters for each exist before the first request.
    pub fn new<'a>(routes: impl IntoIterator<Item = &'a str>, gauges: Arc<dyn Gauges>) -> Self {
        let mut registry = Registry::default();
        let family = Family::<RequestLabels, Counter>::default();
        registry.register("agx_http_requests", "Requests by route template and status", family.clone());
        let mut names: Vec<String> = vec![UNMATCHED.to_owned()];
        for route in routes {
            if !names.iter().any(|n| n == route) {
                names.push(route.to_owned());
            }
        }
        let requests = names
            .iter()
            .map(|route| {
                STATUSES.map(|s| {
                    let status = if s == 0 { "other".to_owned() } else { s.to_string() };
                    family.get_or_create(&RequestLabels { route: route.clone(), status }).clone()
                })
            })
            .collect();
        let routes = names.into_iter().enumerate().map(|(i, r)| (r, i)).collect();

        let outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "agx_auth_verdicts",
            "Authentication verdicts by outcome (error code, or ALLOWED)",
            outcomes.clone(),
        );
        let mut verdicts: Vec<(&'static str, Counter)> = AuthError::all_docs()
            .iter()
            .map(|d| (d.code, outcomes.get_or_create(&OutcomeLabels { outcome: d.code }).clone()))
            .collect();
        verdicts.push(("ALLOWED", outcomes.get_or_create(&OutcomeLabels { outcome: "ALLOWED" }).clone()));
        let rate_limited = Counter::default();
        registry.register("agx_rate_limit_rejections", "Requests refused with 429", rate_limited.clone());
        let latency = LatencyHistogram::default();
        registry.register("agx_auth_verdict_seconds", "Time to reach a verdict", latency.clone());
        let audit_failures = Counter::default();
        registry.register(
            "agx_audit_write_failures",
            "Audit events that could not be written (their changes were made)",
            audit_failures.clone(),
        );
        registry.register_collector(Box::new(ScrapeTime(gauges)));
        Metrics { registry, requests, routes, verdicts, rate_limited, latency, audit_failures }
    }

    /// The counters' index of a matched router pattern (`None`: unmatched),
    /// found once per request, before the handler runs.
    pub fn route_index(&self, route: Option<&str>) -> usize {
        route.and_then(|r| self.routes.get(r).copied()).unwrap_or(0)
    }

    /// Counts one response of the route at `route` (from [`Metrics::route_index`]).
    pub fn count(&self, route: usize, status: u16) {
        let status = STATUSES.iter().position(|s| *s == status).unwrap_or(STATUSES.len() - 1);
        if let Some(counters) = self.requests.get(route) {
            counters[status].inc();
        }
    }

    /// Counts one audit event that could not be written.
    pub fn audit_write_failed(&self) {
        self.audit_failures.inc();
    }

    /// The OpenMetrics text of everything.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            // Writing into a String cannot fail; say so in the output if it ever does.
            let _ = writeln!(out, "# metrics could not be encoded");
        }
        out
    }
}

impl VerdictObserver for Metrics {
    fn observe(&self, code: Option<&'static str>, elapsed: Duration) {
        let outcome = code.unwrap_or("ALLOWED");
        if let Some((_, counter)) = self.verdicts.iter().find(|(c, _)| *c == outcome) {
            counter.inc();
        }
        if outcome == "RATE_LIMITED" {
            self.rate_limited.inc();
        }
        self.latency.observe(elapsed);
    }
}

/// A latency histogram of atomics: [`BUCKETS`] plus `+Inf`, the count and
/// the sum in nanoseconds. Clones share the atomics.
#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram(Arc<Atomics>);

#[derive(Debug, Default)]
pub struct Atomics {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl std::ops::Deref for LatencyHistogram {
    type Target = Atomics;

    fn deref(&self) -> &Atomics {
        &self.0
    }
}

impl LatencyHistogram {
    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // The encoder takes per-bucket counts and accumulates them.
        let bounds = BUCKETS.iter().copied().chain([f64::MAX]);
        let buckets: Vec<(f64, u64)> = bounds.zip(&self.buckets).map(|(b, n)| (b, n.load(Ordering::Relaxed))).collect();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, self.count.load(Ordering::Relaxed), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

struct ScrapeTime(Arc<dyn Gauges>);

impl std::fmt::Debug for ScrapeTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScrapeTime")
    }
}

impl Collector for ScrapeTime {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some((hits, misses)) = self.0.cache() {
            for (name, help, n) in [
                ("agx_key_cache_hits", "Key cache lookups answered from the cache", hits),
                ("agx_key_cache_misses", "Key cache lookups that went to the store", misses),
            ] {
                let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                ConstCounter::new(n).encode(metric)?;
            }
        }
        if let Some((keys, refused, passed)) = self.0.filter() {
            let metric = encoder.encode_descriptor(
                "agx_key_filter_keys",
                "Keys in the filter of known keys; -1 while it loads (every lookup goes to the store)",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(keys.map_or(-1, |k| i64::try_from(k).unwrap_or(i64::MAX))).encode(metric)?;
            for (name, help, n) in [
                ("agx_key_filter_refused", "Key lookups the filter answered alone: no such key", refused),
                ("agx_key_filter_passed", "Key lookups the filter passed to the cache and store", passed),
            ] {
                let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                ConstCounter::new(n).encode(metric)?;
            }
        }
        if let Some((outage, outages)) = self.0.limiter() {
            let metric = encoder.encode_descriptor(
                "agx_rate_limiter_outage",
                "1 while the Redis limiter cannot reach Redis",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::from(outage)).encode(metric)?;
            let metric = encoder.encode_descriptor(
                "agx_rate_limiter_outages",
                "Redis outages seen since start",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(outages).encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct None_;
    impl Gauges for None_ {
        fn cache(&self) -> Option<(u64, u64)> {
            Some((3, 1))
        }
        fn limiter(&self) -> Option<(bool, u64)> {
            None
        }
    }

    #[test]
    fn counts_render_as_openmetrics() {
        let m = Metrics::new(["/healthz", "/api/public/agents/{agentId}"], Arc::new(None_));
        m.count(m.route_index(Some("/healthz")), 200);
        m.count(m.route_index(Some("/healthz")), 200);
        m.count(m.route_index(None), 404);
        m.count(m.route_index(Some("/api/public/agents/{agentId}")), 299);
        m.observe(Some("RATE_LIMITED"), Duration::from_micros(3));
        m.observe(None, Duration::from_secs(1));
        let text = m.render();
        for line in [
            r#"agx_http_requests_total{route="/healthz",status="200"} 2"#,
            r#"agx_http_requests_total{route="unmatched",status="404"} 1"#,
            r#"agx_http_requests_total{route="/api/public/agents/{agentId}",status="other"} 1"#,
            r#"agx_auth_verdicts_total{outcome="RATE_LIMITED"} 1"#,
            r#"agx_auth_verdicts_total{outcome="ALLOWED"} 1"#,
            "agx_rate_limit_rejections_total 1",
            r#"agx_auth_verdict_seconds_bucket{le="0.000005"} 1"#,
            r#"agx_auth_verdict_seconds_bucket{le="+Inf"} 2"#,
            "agx_auth_verdict_seconds_count 2",
            "agx_key_cache_hits_total 3",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
