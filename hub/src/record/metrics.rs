//! `/metrics` in Prometheus text format.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub decisions: IntCounterVec,
    pub spawns: IntCounter,
    pub spawn_failures: IntCounter,
    pub running_servers: IntGauge,
    pub open_websockets: IntGauge,
    pub audit_write_seconds: Histogram,
    pub audit_failures: IntCounter,
    pub policy_reloads: IntCounter,
    pub policy_reload_errors: IntCounter,
    pub logins: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("steward".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route and status class",
            ),
            &["route", "status"],
        )?;
        let decisions = IntCounterVec::new(
            Opts::new("decisions_total", "Operation decisions by result"),
            &["result"],
        )?;
        let spawns = IntCounter::new("spawns_total", "UI servers started")?;
        let spawn_failures =
            IntCounter::new("spawn_failures_total", "UI server starts that failed")?;
        let running_servers =
            IntGauge::new("running_servers", "UI servers the hub knows to be running")?;
        let open_websockets = IntGauge::new("open_websockets", "Browser WebSockets being relayed")?;
        let audit_write_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "audit_write_seconds",
                "Time until an audit record is durable",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
            ]),
        )?;
        let audit_failures = IntCounter::new(
            "audit_write_failures_total",
            "Audit records that could not be written (operations refused)",
        )?;
        let policy_reloads =
            IntCounter::new("policy_reloads_total", "Successful site policy reloads")?;
        let policy_reload_errors = IntCounter::new(
            "policy_reload_errors_total",
            "Site policy reloads refused because the file had errors",
        )?;
        let logins = IntCounterVec::new(
            Opts::new("logins_total", "Login attempts by result"),
            &["result"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(spawns.clone()))?;
        registry.register(Box::new(spawn_failures.clone()))?;
        registry.register(Box::new(running_servers.clone()))?;
        registry.register(Box::new(open_websockets.clone()))?;
        registry.register(Box::new(audit_write_seconds.clone()))?;
        registry.register(Box::new(audit_failures.clone()))?;
        registry.register(Box::new(policy_reloads.clone()))?;
        registry.register(Box::new(policy_reload_errors.clone()))?;
        registry.register(Box::new(logins.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            decisions,
            spawns,
            spawn_failures,
            running_servers,
            open_websockets,
            audit_write_seconds,
            audit_failures,
            policy_reloads,
            policy_reload_errors,
            logins,
        })
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
