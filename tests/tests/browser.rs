//! The web UI in real Chromium, against a real `steward demo` hub with real PAM users:
//!
//! 1. sign-in by keyboard alone, a wrong password shown plainly, visible focus; the
//!    rate limit's wait shown with the button disabled;
//! 2. the overview lists every owner's workflows, live, the filter narrows them, and an
//!    owner whose server stopped is marked stale;
//! 3. carl (read-only on alice's workflows) sees dimmed buttons whose title says why,
//!    gets the full "Why can't I?" explanation, and a request forced from the console
//!    over the WebSocket is refused by the hub and audited (and shown on the audit page);
//! 4. a line planted in one of alice's job logs is found by the log search, highlighted,
//!    and opened in the log viewer;
//! 5. bob (alice's operations group) raises his privileges with his password, plays the
//!    workflow, follows a running job's log live and kills the job; the task turns
//!    `failed` in his view and, live, in alice's; alice's audit page shows both bob's
//!    kill and carl's refused attempt;
//! 6. at 200 % zoom (half the CSS viewport) nothing needs horizontal scrolling and every
//!    form control has a label;
//! 7. the hub's clock moves past the elevation deadline: bob's page drops to read-only
//!    by itself, without a reload; no page reported a CSP violation; signing out ends
//!    the session on the server.
//!
//! One demo hub serves every step (demo users' passwords change per demo), so the steps
//! run in order in one test; each saves a screenshot under docs/screenshots/.

// Demo hubs reset the shared demo users, so each test holds the process-wide demo lock
// for its whole run, across awaits, on purpose.
#![allow(clippy::await_holding_lock)]

use fantoccini::key::Key;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use steward_e2e::browser::{Browser, DemoHub};
use steward_e2e::*;

const T: Duration = Duration::from_secs(30);
const LONG: Duration = Duration::from_secs(90);

fn q(s: &str) -> String {
    json!(s).to_string()
}

/// Signs in through the form, by keyboard only (type, Tab, type, Enter).
async fn sign_in(b: &Browser, user: &str, password: &str) {
    b.wait_css("#login-user", T).await;
    b.wait_js(
        "document.activeElement && document.activeElement.id === 'login-user'",
        T,
        "the username field to have focus",
    )
    .await;
    b.type_focused(&(user.to_string() + &Key::Tab)).await;
    b.type_focused(&(password.to_string() + &Key::Enter)).await;
    b.wait_js(
        &format!(
            "!document.getElementById('top').hidden && document.getElementById('who-user').textContent.startsWith({})",
            q(user)
        ),
        T,
        "the signed-in header",
    )
    .await;
}

/// Opens a workflow and waits for its live snapshot and its permissions.
async fn open_workflow(b: &Browser, owner: &str, wf: &str) {
    b.route(&format!("#/w/{owner}/{wf}")).await;
    b.wait_js(
        &format!(
            "(() => {{ const v = document.querySelector('.workflow-view'); return v && v.dataset.owner === {} && v.dataset.workflow === {} && v.dataset.live === 'true' && v.dataset.permitted !== '0' && document.querySelectorAll('#tasks tr[data-task]').length > 0; }})()",
            q(owner),
            q(wf)
        ),
        LONG,
        "the live workflow view",
    )
    .await;
}

fn op_button(scope: &str, op: &str) -> String {
    format!("{scope} button.op[data-op=\"{op}\"]")
}

fn task_button(task: &str, op: &str) -> String {
    format!("#tasks tr[data-task=\"{task}\"] button.op[data-op=\"{op}\"]")
}

fn plant_log_line(needle: &str) {
    let alice = nix::unistd::User::from_name("alice").unwrap().unwrap();
    let run = alice.dir.join(".steward/run");
    // Start from never-run workflows (the demo accounts outlive earlier demos); no
    // server of alice's runs yet, so no scheduler holds these.
    if run.exists() {
        std::fs::remove_dir_all(&run).unwrap();
    }
    let job = run.join("housekeeping/log/job/1/archive/01");
    std::fs::create_dir_all(&job).unwrap();
    std::fs::write(
        job.join("job.out"),
        format!("archiving\nsomething ordinary\nthe needle: {needle} is here\nlast line\n"),
    )
    .unwrap();
    sh(&format!(
        "chown alice: {run} && chmod 700 {run} && chown -R alice: {run}/housekeeping && chmod -R go-rwx {run}/housekeeping",
        run = run.display()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_ui_in_chromium() {
    if !require_root("web_ui_in_chromium") {
        return;
    }
    let started = Instant::now();
    let needle = format!("PLANTED-{}", rand::random::<u32>());
    let hub = DemoHub::start();
    eprintln!("demo hub up after {:?}", started.elapsed());
    plant_log_line(&needle);
    // alice and bob have used the hub today: their servers run, so the overview shows
    // their workflows live.
    let _alice_http = hub.login_http("alice").await;
    let _bob_http = hub.login_http("bob").await;
    let (carl_http, carl_csrf) = hub.login_http("carl").await;

    let carl = Browser::start("carl", &hub.base, 1280, 900).await;

    // --- 1. sign-in -------------------------------------------------------------------
    carl.goto("/").await; // redirects to /hub/
    carl.wait_css("#login-user", T).await;
    assert!(carl
        .client
        .current_url()
        .await
        .unwrap()
        .path()
        .starts_with("/hub/"));
    carl.type_focused(&("carl".to_string() + &Key::Tab)).await;
    carl.type_focused(&("not-my-password".to_string() + &Key::Enter))
        .await;
    let err = carl
        .wait_js(
            "(() => { const e = document.getElementById('login-error'); return e && !e.hidden && e.textContent; })()",
            T,
            "the sign-in error",
        )
        .await;
    assert!(
        err.as_str()
            .unwrap()
            .contains("invalid username or password"),
        "{err}"
    );
    // Focus went back to the (cleared) password field, visibly.
    let focus = carl
        .js("const a = document.activeElement; return [a.id, getComputedStyle(a).outlineStyle, a.value];")
        .await;
    assert_eq!(focus[0], "login-password", "{focus}");
    assert_ne!(
        focus[1], "none",
        "focused field has no visible outline: {focus}"
    );
    assert_eq!(focus[2], "", "password field not cleared");
    carl.screenshot("01-login-error").await;
    // Someone guessing: after five failures for one name the hub says wait, and the
    // form says for how long and keeps the button disabled.
    carl.find("#login-user").await.clear().await.unwrap();
    carl.find("#login-user")
        .await
        .send_keys("nobody")
        .await
        .unwrap();
    let mut limited = Value::Null;
    for attempt in 1..=6 {
        carl.js("document.getElementById('login-error').hidden = true; return true;")
            .await;
        carl.find("#login-password")
            .await
            .send_keys(&(format!("guess-{attempt}") + &Key::Enter))
            .await
            .unwrap();
        limited = carl
            .wait_js(
                "(() => { const e = document.getElementById('login-error'); return !e.hidden && [e.textContent, document.getElementById('login-submit').disabled]; })()",
                T,
                "an answer to the guess",
            )
            .await;
    }
    assert!(
        limited[0]
            .as_str()
            .unwrap()
            .starts_with("Too many failed sign-in attempts. Try again in "),
        "{limited}"
    );
    assert_eq!(limited[1], true, "button stays disabled while rate-limited");
    carl.screenshot("02-login-rate-limited").await;
    // Another name unlocks the form (the limit was for "nobody").
    carl.find("#login-user").await.clear().await.unwrap();
    carl.find("#login-user")
        .await
        .send_keys(&("carl".to_string() + &Key::Tab))
        .await
        .unwrap();
    carl.type_focused(&(hub.password("carl") + &Key::Enter))
        .await;
    carl.wait_js(
        "!document.getElementById('top').hidden && document.getElementById('who-user').textContent === 'carl (admin)'",
        T,
        "carl signed in",
    )
    .await;
    assert_eq!(
        carl.attr("#class-read", "aria-pressed").await.as_deref(),
        Some("true"),
        "sessions start read-only"
    );

    // --- 2. overview ------------------------------------------------------------------
    carl.wait_js(
        "['alice', 'bob', 'carl'].every(o => document.querySelector(`section.owner[data-owner=\"${o}\"] tr[data-workflow]`))",
        LONG,
        "all three owners in the overview",
    )
    .await;
    let alice_rows = carl
        .js("return [...document.querySelectorAll('section.owner[data-owner=\"alice\"] tr[data-workflow]')].map(r => [r.dataset.workflow, r.dataset.state, r.querySelector('.counts, .muted').textContent]);")
        .await;
    let names: Vec<&str> = alice_rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"alice_forecast") && names.contains(&"housekeeping"),
        "{alice_rows}"
    );
    assert!(
        alice_rows[0][2].as_str().unwrap().contains("waiting"),
        "task counts shown: {alice_rows}"
    );
    carl.find("#main input[type=search]")
        .await
        .send_keys("forecast")
        .await
        .unwrap();
    let shown = carl
        .wait_js(
            "(() => { const rows = [...document.querySelectorAll('#owners tr[data-workflow]')]; const vis = rows.filter(r => !r.hidden).map(r => r.dataset.workflow); return vis.length === 3 && vis.every(n => n.endsWith('_forecast')) && document.getElementById('overview-shown').textContent; })()",
            T,
            "the filter to leave the three forecasts",
        )
        .await;
    assert!(shown.as_str().unwrap().starts_with("3 of "), "{shown}");
    // bob's server stops (a hub admin's action): his entries stay, marked stale.
    let r = carl_http
        .post(format!("{}/hub/api/admin/servers/bob/stop", hub.base))
        .header("x-csrf-token", &carl_csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "stop bob's server: {:?}", r.text().await);
    carl.wait_js(
        "(() => { const s = document.querySelector('section.owner[data-owner=\"bob\"]'); return s && s.classList.contains('stale') && s.querySelector('.stale-badge') && !document.querySelector('section.owner[data-owner=\"alice\"]').classList.contains('stale'); })()",
        T,
        "bob's workflows marked stale",
    )
    .await;
    carl.screenshot("03-overview").await;
    carl.find("#main input[type=search]")
        .await
        .clear()
        .await
        .unwrap();

    // --- 3. denied buttons, "Why can't I?", a forced request ---------------------------
    carl.click("section.owner[data-owner=\"alice\"] tr[data-workflow=\"alice_forecast\"] a")
        .await;
    open_workflow(&carl, "alice", "alice_forecast").await;
    for css in [
        op_button("#workflow-actions", "pause"),
        op_button("#workflow-actions", "stop"),
        task_button("1/fetch_obs", "kill"),
        task_button("1/fetch_obs", "trigger"),
    ] {
        assert_eq!(
            carl.attr(&css, "aria-disabled").await.as_deref(),
            Some("true"),
            "{css} is usable by carl"
        );
        let title = carl.attr(&css, "title").await.unwrap_or_default();
        assert!(
            !title.is_empty() && !title.starts_with("checking") && !title.starts_with("cannot"),
            "{css}: the title must give the reason, got {title:?}"
        );
    }
    // Activating a dimmed button explains instead of acting.
    carl.click(&op_button("#workflow-actions", "pause")).await;
    let verdict = carl
        .wait_js(
            "(() => { const v = document.querySelector('#why-output .verdict[data-op=\"pause\"]'); return v && [v.dataset.allowed, [...document.querySelectorAll('#why-output .reasons li')].map(li => li.textContent)]; })()",
            T,
            "the explanation for pause",
        )
        .await;
    assert_eq!(verdict[0], "false", "{verdict}");
    assert!(
        !verdict[1].as_array().unwrap().is_empty(),
        "no reasons given: {verdict}"
    );
    assert!(
        carl.js("return document.querySelectorAll('#activity li').length")
            .await
            == 0,
        "a dimmed button sent something"
    );
    carl.screenshot("04-why-cant-i").await;

    // From the console: carl opens his own WebSocket and asks to pause alice's workflow.
    let forced = carl
        .js_async(
            r#"const done = arguments[arguments.length - 1];
            const ws = new WebSocket(`wss://${location.host}/user/alice/ws`);
            const t = setTimeout(() => done({type: 'timeout'}), 25000);
            ws.onmessage = (e) => {
              const m = JSON.parse(e.data);
              if (m.type === 'snapshot') {
                ws.send(JSON.stringify({type: 'op', id: 'forced-1', op: 'pause', target: 'alice_forecast', args: {}}));
              } else if (m.id === 'forced-1') { clearTimeout(t); ws.close(); done(m); }
            };
            ws.onerror = () => { clearTimeout(t); done({type: 'ws-error'}); };"#,
        )
        .await;
    assert_eq!(forced["type"], "denied", "forced pause: {forced}");
    assert_eq!(forced["op"], "pause");
    assert!(
        !forced["reason"].as_str().unwrap_or("").is_empty(),
        "{forced}"
    );
    let denied = hub
        .audit_records(|r| r["actor"] == "carl" && r["op"] == "pause" && r["decision"] == "deny");
    assert_eq!(denied.len(), 1, "the refusal is audited once: {denied:?}");
    assert_eq!(denied[0]["owner"], "alice");
    assert_eq!(denied[0]["workflow"], "alice_forecast");
    // carl is an admin: the audit page shows it.
    carl.route("#/audit?actor=carl&decision=deny").await;
    carl.wait_css(
        "#audit-results tr[data-actor=\"carl\"][data-op=\"pause\"][data-decision=\"deny\"]",
        T,
    )
    .await;
    assert_eq!(
        carl.js("return [...document.querySelectorAll('#audit-form input')].find(i => i.name === 'actor').value")
            .await,
        "carl",
        "filters are kept in the form"
    );
    carl.screenshot("05-audit-refused").await;

    // --- 4. log search ----------------------------------------------------------------
    open_workflow(&carl, "alice", "housekeeping").await;
    carl.find("#log-search input[type=search]")
        .await
        .send_keys(&(needle.clone() + &Key::Enter))
        .await
        .unwrap();
    let hit = carl
        .wait_js(
            "(() => { const li = document.querySelector('#log-search-results li'); return li && [li.dataset.file, li.dataset.line, li.querySelector('mark') && li.querySelector('mark').textContent, document.getElementById('log-search-summary').textContent]; })()",
            T,
            "a search hit",
        )
        .await;
    assert_eq!(hit[0], "log/job/1/archive/01/job.out", "{hit}");
    assert_eq!(hit[1], "3", "{hit}");
    assert_eq!(hit[2], needle.as_str(), "highlighted: {hit}");
    carl.click("#log-search-results li button").await;
    let shown = carl
        .wait_js(
            "(() => { const l = document.querySelector('#log-text .hit-line'); return l && l.dataset.n === '3' && l.querySelector('mark') && [l.textContent, document.getElementById('log-title').textContent]; })()",
            T,
            "the log opened at the hit",
        )
        .await;
    assert!(shown[0].as_str().unwrap().contains(&needle), "{shown}");
    assert!(shown[1].as_str().unwrap().contains("1/archive"), "{shown}");
    carl.screenshot("06-log-search").await;

    // --- 5. elevation, an action, live updates ------------------------------------------
    let bob = Browser::start("bob", &hub.base, 1280, 900).await;
    bob.goto("/hub/#/w/alice/alice_forecast").await;
    sign_in(&bob, "bob", &hub.password("bob")).await;
    open_workflow(&bob, "alice", "alice_forecast").await;
    let play = op_button("#workflow-actions", "play");
    assert_eq!(
        bob.attr(&play, "aria-disabled").await.as_deref(),
        Some("true")
    );
    let why = bob.attr(&play, "title").await.unwrap_or_default();
    assert!(
        why.contains("execute") || why.contains("privileges"),
        "read-only bob should be told to raise privileges: {why:?}"
    );

    let alice = Browser::start("alice", &hub.base, 1280, 900).await;
    alice.goto("/hub/#/w/alice/alice_forecast").await;
    sign_in(&alice, "alice", &hub.password("alice")).await;
    open_workflow(&alice, "alice", "alice_forecast").await;

    // Raise: the toggle asks for the password again.
    bob.click("#class-execute").await;
    bob.wait_js(
        "document.getElementById('elevate-dialog').open && document.activeElement.id === 'elevate-password'",
        T,
        "the password dialog",
    )
    .await;
    bob.type_focused(&("wrong-password".to_string() + &Key::Enter))
        .await;
    bob.wait_js(
        "!document.getElementById('elevate-error').hidden",
        T,
        "the wrong-password message",
    )
    .await;
    assert_eq!(
        bob.js("return document.body.dataset.sessionClass").await,
        "read"
    );
    bob.type_focused(&(hub.password("bob") + &Key::Enter)).await;
    let countdown = bob
        .wait_js(
            "document.body.dataset.sessionClass === 'execute' && !document.getElementById('countdown').hidden && document.getElementById('countdown').textContent",
            T,
            "execute privileges and a countdown",
        )
        .await;
    assert!(
        // bob is in steward-ops, which the demo gives 30 minutes instead of the default 15.
        ["execute for 29", "execute for 30"]
            .iter()
            .any(|p| countdown.as_str().unwrap().starts_with(p)),
        "30-minute countdown: {countdown}"
    );
    let loaded_at = bob.js("return window.stewardLoadedAt").await;
    bob.wait_js(
        &format!("document.querySelector('.workflow-view').dataset.live === 'true' && document.querySelector({}).getAttribute('aria-disabled') === 'false'", q(&play)),
        T,
        "play enabled after raising",
    )
    .await;
    bob.scroll_to(None).await;
    bob.screenshot("07-elevated").await;

    bob.click(&play).await;
    bob.wait_js(
        "document.querySelector('.workflow-view').dataset.state === 'running'",
        LONG,
        "the workflow running",
    )
    .await;
    let first = bob
        .wait_js("document.querySelector('#activity li') && document.querySelector('#activity li').dataset.kind !== 'pending' && document.querySelector('#activity li').dataset.kind", T, "play's answer")
        .await;
    assert_eq!(first, "ok", "play answered");
    // A running model job: follow its log live, then kill it.
    let task = bob
        .wait_js(
            "(() => { const r = document.querySelector('#tasks tr[data-state=\"running\"][data-task$=\"/run_model\"]'); return r && r.dataset.task; })()",
            LONG,
            "run_model running",
        )
        .await;
    let task = task.as_str().unwrap().to_string();
    bob.click(&format!("#tasks tr[data-task=\"{task}\"] button.log-open"))
        .await;
    bob.wait_js(
        "document.querySelectorAll('#log-text .line').length >= 1",
        T,
        "the job log",
    )
    .await;
    bob.click("#log-viewer input[type=checkbox]").await;
    let before = bob
        .js("return document.querySelectorAll('#log-text .line').length")
        .await
        .as_u64()
        .unwrap();
    bob.wait_js(
        &format!("document.querySelectorAll('#log-text .line').length > {before} && document.getElementById('log-text').textContent.includes('step')"),
        T,
        "new log lines while following",
    )
    .await;
    let mode = bob
        .js("return document.getElementById('log-viewer').dataset.following || 'none'")
        .await;
    eprintln!("log follow mode: {mode} (ws = relayed tail, poll = HTTP fallback)");
    bob.click(&task_button(&task, "kill")).await;
    let sel = format!("#tasks tr[data-task=\"{task}\"]");
    bob.wait_js(
        &format!(
            "document.querySelector({}).dataset.state === 'failed'",
            q(&sel)
        ),
        T,
        "the killed task failed (bob's view)",
    )
    .await;
    alice
        .wait_js(
            &format!(
                "document.querySelector({}).dataset.state === 'failed'",
                q(&sel)
            ),
            T,
            "the killed task failed (alice's view, live)",
        )
        .await;
    assert_eq!(
        alice
            .js("return document.querySelectorAll('#activity li').length")
            .await,
        0,
        "alice did nothing; her page updated by itself"
    );
    let errors = bob
        .js("return [...document.querySelectorAll('#activity li')].filter(li => !['ok'].includes(li.dataset.kind)).map(li => li.textContent)")
        .await;
    assert_eq!(errors, json!([]), "bob's activity shows problems");
    for b in [&bob, &alice] {
        b.scroll_to(Some("#tasks")).await;
    }
    bob.screenshot("08-killed-live").await;
    alice.screenshot("09-owner-sees-it-live").await;
    let is_kill = |r: &Value| r["actor"] == "bob" && r["op"] == "kill" && r["kind"] == "outcome";
    wait_until(Duration::from_secs(5), || {
        !hub.audit_records(is_kill).is_empty()
    });
    let kills = hub.audit_records(is_kill);
    assert_eq!(kills.len(), 1, "{kills:?}");
    assert_eq!(kills[0]["elevation"], "execute");

    // alice, as the owner, sees both on her audit page (she is no admin).
    alice.route("#/audit").await;
    alice
        .wait_css("#audit-results tr[data-actor=\"bob\"][data-op=\"kill\"]", T)
        .await;
    alice
        .wait_css(
            "#audit-results tr[data-actor=\"carl\"][data-op=\"pause\"][data-decision=\"deny\"]",
            T,
        )
        .await;
    alice.screenshot("10-audit-owner").await;

    // --- 6. 200 % zoom, labels ---------------------------------------------------------
    // Zooming to 200 % halves the CSS viewport; a 640x450 window lays out the same way.
    carl.client.set_window_size(640, 560).await.unwrap();
    for route in ["#/", "#/w/alice/alice_forecast", "#/audit"] {
        carl.route(route).await;
        carl.wait_js(
            "document.querySelector('#main h1') && !document.querySelector('[aria-busy=\"true\"]')",
            LONG,
            "the page",
        )
        .await;
        if route.starts_with("#/w/") {
            open_workflow(&carl, "alice", "alice_forecast").await;
        }
        let overflow = carl
            .js("return [document.documentElement.scrollWidth, window.innerWidth]")
            .await;
        assert!(
            overflow[0].as_f64().unwrap() <= overflow[1].as_f64().unwrap() + 1.0,
            "{route}: horizontal scrolling at 200 % zoom: {overflow}"
        );
        let unlabelled = carl
            .js("return [...document.querySelectorAll('input, select, textarea')].filter(e => e.type !== 'hidden' && !e.labels.length && !e.getAttribute('aria-label')).map(e => e.outerHTML)")
            .await;
        assert_eq!(unlabelled, json!([]), "{route}: controls without labels");
    }
    carl.route("#/w/alice/alice_forecast").await;
    open_workflow(&carl, "alice", "alice_forecast").await;
    carl.scroll_to(None).await;
    carl.screenshot("11-zoom-200").await;

    // --- 7. expiry without a reload, CSP, sign-out -----------------------------------
    bob.route("#/w/alice/alice_forecast").await;
    open_workflow(&bob, "alice", "alice_forecast").await;
    hub.set_clock_offset(2400); // past bob's 30-minute (steward-ops) elevation
    bob.wait_js(
        &format!(
            "document.body.dataset.sessionClass === 'read' && document.getElementById('countdown').hidden && document.querySelector({}).getAttribute('aria-disabled') === 'true' && document.querySelector({}).getAttribute('aria-disabled') === 'true'",
            q(&op_button("#workflow-actions", "pause")),
            q(&task_button(&task, "trigger"))
        ),
        Duration::from_secs(20),
        "the page to drop to read-only by itself",
    )
    .await;
    assert_eq!(
        bob.js("return window.stewardLoadedAt").await,
        loaded_at,
        "the page was reloaded"
    );
    assert_eq!(
        bob.attr("#class-read", "aria-pressed").await.as_deref(),
        Some("true")
    );
    bob.scroll_to(None).await;
    bob.screenshot("12-expired-read-only").await;
    assert!(
        !hub.audit_records(|r| r["actor"] == "bob" && r["event"] == "expire")
            .is_empty(),
        "the expiry is audited"
    );

    for b in [&carl, &bob, &alice] {
        assert_eq!(
            b.csp_violations().await,
            Vec::<String>::new(),
            "[{}] CSP violations",
            b.name
        );
    }
    // Logging out ends the session server-side.
    bob.click("#logout").await;
    bob.wait_css("#login-user", T).await;
    let me: Value = bob
        .js_async("const done = arguments[arguments.length - 1]; fetch('/hub/api/me').then(r => done(r.status));")
        .await;
    assert_eq!(me, 401);

    // Leave nothing running (schedulers outlive the demo by design): the owner stops
    // her workflow. The hub's clock goes back first, or the tokens it signs would be
    // "issued in the future" for alice's server.
    hub.set_clock_offset(0);
    alice.route("#/w/alice/alice_forecast").await;
    open_workflow(&alice, "alice", "alice_forecast").await;
    // Owners raise their privileges too (sudo-like), with their own password.
    let stop = op_button("#workflow-actions", "stop");
    assert_eq!(
        alice.attr(&stop, "aria-disabled").await.as_deref(),
        Some("true"),
        "owners act only with raised privileges"
    );
    alice.click("#class-execute").await;
    alice
        .wait_js(
            "document.getElementById('elevate-dialog').open && document.activeElement.id === 'elevate-password'",
            T,
            "alice's password dialog",
        )
        .await;
    alice
        .type_focused(&(hub.password("alice") + &Key::Enter))
        .await;
    alice
        .wait_js(
            &format!(
                "document.body.dataset.sessionClass === 'execute' && document.querySelector('.workflow-view').dataset.live === 'true' && document.querySelector({}).getAttribute('aria-disabled') === 'false'",
                q(&stop)
            ),
            T,
            "alice raised, stop enabled",
        )
        .await;
    alice.click(&stop).await;
    alice
        .wait_js(
            "document.querySelector('.workflow-view').dataset.state === 'stopped'",
            LONG,
            "alice's workflow stopped",
        )
        .await;

    carl.close().await;
    bob.close().await;
    alice.close().await;
    eprintln!("browser suite took {:?}", started.elapsed());
}
