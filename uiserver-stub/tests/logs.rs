//! Job logs: byte ranges, search with file/line, live tail, and path refusals.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;
use steward_protocol::Operation as O;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const FLOW: &str = r#"
cycles = ["1", "2"]
[tasks.counter]
script = '''
i=1
while [ $i -le 500 ]; do echo "line $i of counter in cycle $STEWARD_CYCLE"; i=$((i+1)); done
echo "NEEDLE planted here" >&2
'''
[tasks.slow]
script = '''
for i in 1 2 3 4 5; do echo "tick $i"; sleep 0.2; done
'''
"#;

async fn played(env: &mut Env) -> Ws {
    env.write_flow("demo1", FLOW);
    env.start(300);
    let mut ws = env.ws().await;
    assert!(env.op(&mut ws, O::Play, "demo1", json!({})).await.0);
    ws
}

#[tokio::test]
async fn byte_ranges_search_and_refusals() {
    let mut env = Env::new();
    let mut ws = played(&mut env).await;
    for c in ["1", "2"] {
        ws.wait_task("demo1", c, "counter", "succeeded", secs(10))
            .await
            .unwrap();
    }
    let t = |env: &Env| env.jwt.token(&[O::Read], Some("demo1"));
    let full = std::fs::read(env.job_dir("demo1", "1", "counter", 1).join("job.out")).unwrap();

    // Byte range.
    let r = env
        .get(
            "/api/log?workflow=demo1&cycle=1&task=counter&job=1&file=out&offset=100&len=50",
            Some(&t(&env)),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-log-size"].to_str().unwrap(),
        full.len().to_string()
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &full[100..150]);
    // Default job = latest; past the end = empty.
    let r = env
        .get(
            &format!(
                "/api/log?workflow=demo1&cycle=1&task=counter&offset={}",
                full.len()
            ),
            Some(&t(&env)),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = env
        .get(
            "/api/log?workflow=demo1&cycle=1&task=counter&job=1&file=err",
            Some(&t(&env)),
        )
        .await;
    assert_eq!(r.text().await.unwrap(), "NEEDLE planted here\n");

    // Search: literal, case-insensitive, regex; file and line reported.
    let r: Value = env
        .get(
            "/api/search?workflow=demo1&q=needle&case_insensitive=true",
            Some(&t(&env)),
        )
        .await
        .json()
        .await
        .unwrap();
    let m = r["matches"].as_array().unwrap();
    assert_eq!(m.len(), 2, "{r}");
    assert_eq!(m[0]["file"], "log/job/1/counter/01/job.err");
    assert_eq!(m[0]["line"], 1);
    assert_eq!(m[0]["cycle"], "1");
    assert_eq!(m[0]["stream"], "err");
    assert_eq!(m[0]["text"], "NEEDLE planted here");
    let r: Value = env
        .get("/api/search?workflow=demo1&q=needle", Some(&t(&env)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["matches"].as_array().unwrap().len(), 0);
    let r: Value = env
        .get(
            "/api/search?workflow=demo1&q=%5Eline%2037%20of&regex=true",
            Some(&t(&env)),
        )
        .await
        .json()
        .await
        .unwrap();
    let m = r["matches"].as_array().unwrap();
    assert_eq!(m.len(), 2, "{r}");
    assert_eq!(m[0]["line"], 37);
    assert_eq!(m[0]["file"], "log/job/1/counter/01/job.out");
    assert_eq!(m[1]["file"], "log/job/2/counter/01/job.out");
    // The result size is capped.
    let r: Value = env
        .get("/api/search?workflow=demo1&q=line&max=10", Some(&t(&env)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["matches"].as_array().unwrap().len(), 10);
    assert_eq!(r["truncated"], true);
    let r = env
        .get("/api/search?workflow=demo1&q=(&regex=true", Some(&t(&env)))
        .await;
    assert_eq!(r.status(), 400);

    // Traversal: bad ids are refused before any path is built ...
    for bad in [
        "/api/log?workflow=demo1&cycle=..&task=counter&job=1",
        "/api/log?workflow=demo1&cycle=1&task=../../../etc&job=1",
        "/api/log?workflow=../demo1&cycle=1&task=counter&job=1",
        "/api/log?workflow=demo1&cycle=1&task=counter&job=1&file=../../state.json",
        "/api/search?workflow=..&q=x",
    ] {
        let r = env.get(bad, Some(&env.jwt.read())).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    // ... and a symlink planted in the run dir that points outside is refused.
    let secret = env.home().join("secret.txt");
    std::fs::write(&secret, "TOP SECRET\n").unwrap();
    let evil = env.job_dir("demo1", "1", "evil", 1);
    std::fs::create_dir_all(&evil).unwrap();
    std::os::unix::fs::symlink(&secret, evil.join("job.out")).unwrap();
    let r = env
        .get(
            "/api/log?workflow=demo1&cycle=1&task=evil&job=1",
            Some(&t(&env)),
        )
        .await;
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("outside the workflow's run directory"),
        "{body}"
    );
    // A symlinked directory out of the run dir is not followed by search either.
    std::os::unix::fs::symlink(env.home(), env.run_dir("demo1").join("log/job/3")).unwrap();
    let r: Value = env
        .get("/api/search?workflow=demo1&q=TOP%20SECRET", Some(&t(&env)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["matches"].as_array().unwrap().len(), 0, "{r}");
    assert!(env.log_text().contains("refused log path"));
    // All tasks finished: the workflow completed and its scheduler stopped by itself.
    assert!(ws.wait_workflow("demo1", "stopped", secs(10)).await);
}

#[tokio::test]
async fn tail_follows_a_running_job_to_its_end() {
    let mut env = Env::new();
    let mut ws = played(&mut env).await;
    ws.wait_task("demo1", "1", "slow", "running", secs(5))
        .await
        .unwrap();
    ws.send(
        &json!({"type":"tail","id":"t1","workflow":"demo1","cycle":"1","task":"slow","file":"out"}),
    )
    .await;
    let mut text = String::new();
    let mut next_offset = 0u64;
    let mut chunks = 0;
    loop {
        let (_, v) = ws
            .wait_for(secs(10), |v| {
                v["id"] == "t1" && (v["type"] == "log" || v["type"] == "log_end")
            })
            .await
            .expect("tail stalled");
        // wait_for leaves the cursor on the match: step past it.
        ws.clear_through_cursor();
        if v["type"] == "log_end" {
            assert_eq!(v["offset"], next_offset);
            break;
        }
        assert_eq!(v["offset"], next_offset, "chunks are contiguous");
        let d = v["data"].as_str().unwrap();
        next_offset += d.len() as u64;
        text.push_str(d);
        chunks += 1;
    }
    assert_eq!(text, "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n");
    assert!(
        chunks >= 2,
        "followed live, not read once at the end ({chunks} chunk)"
    );

    // A tail of another owner's or a malformed target is an error frame.
    ws.send(&json!({"type":"tail","id":"t2","workflow":"demo1","cycle":"..","task":"slow"}))
        .await;
    let (_, e) = ws
        .wait_for(secs(5), |v| v["type"] == "error" && v["id"] == "t2")
        .await
        .unwrap();
    assert!(
        e["message"].as_str().unwrap().contains("cycle point"),
        "{e}"
    );
    // All tasks finished: the workflow completed and its scheduler stopped by itself.
    assert!(ws.wait_workflow("demo1", "stopped", secs(10)).await);
}
