mod common;
use common::fixture;
use std::hint::black_box;
use steward_policy::{decide, permitted};
fn main() {
    let f = fixture(10000, None, 20000);
    let dec = std::env::args().any(|a| a == "decide");
    for r in 0..100 {
        for q in &f.queries {
            let (o, a) = (&f.subjects[q.owner], &f.subjects[q.actor]);
            if dec {
                if r < 10 {
                    black_box(decide(&f.site, Some(&f.user), o, a, &q.workflow, q.op));
                }
            } else {
                black_box(permitted(&f.site, Some(&f.user), o, a, &q.workflow));
            }
        }
    }
}
