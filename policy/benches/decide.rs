//! Criterion benchmarks: one decision at 10 / 1,000 / 10,000 entries, and compiling a
//! 10,000-entry site policy. Means only; `benches/latency.rs` reports median/p99 and
//! the casbin comparison.

mod common;

use common::fixture;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;
use steward_policy::{decide, permitted, SitePolicy};

fn decisions(c: &mut Criterion) {
    let mut g = c.benchmark_group("decision");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for n in [10, 1_000, 10_000] {
        let f = fixture(n, None, 4096);
        let mut i = 0;
        g.bench_with_input(BenchmarkId::new("permitted", n), &f, |b, f| {
            b.iter(|| {
                let q = &f.queries[i % f.queries.len()];
                i += 1;
                let owner = &f.subjects[q.owner];
                let actor = &f.subjects[q.actor];
                black_box(
                    permitted(&f.site, Some(&f.user), owner, actor, &q.workflow).contains(q.op),
                )
            })
        });
        g.bench_with_input(BenchmarkId::new("decide_with_reasons", n), &f, |b, f| {
            b.iter(|| {
                let q = &f.queries[i % f.queries.len()];
                i += 1;
                let owner = &f.subjects[q.owner];
                let actor = &f.subjects[q.actor];
                black_box(decide(
                    &f.site,
                    Some(&f.user),
                    owner,
                    actor,
                    &q.workflow,
                    q.op,
                ))
            })
        });
    }
    g.finish();
}

fn reload(c: &mut Criterion) {
    let mut g = c.benchmark_group("reload");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    let f = fixture(10_000, None, 1);
    g.bench_function("parse_compile_site_10k", |b| {
        b.iter(|| black_box(SitePolicy::parse(&f.site_src, "site.toml").unwrap()))
    });
    g.finish();
}

criterion_group!(benches, decisions, reload);
criterion_main!(benches);
