//! The real Cylc web UI (served by cylc-uiserver 1.10's `cylc hubapp`) in real
//! Chromium, through a `steward demo --cylc` hub: bob signs in to Steward, opens
//! `/user/alice/cylc/`, and the Cylc UI shows alice's real workflow, live over its
//! `graphql-ws` subscription; after raising his privileges in Steward, he picks Pause
//! in the Cylc UI's own menu, the mutation goes through the hub, and the Cylc UI shows the
//! workflow paused. Screenshots: docs/screenshots/13-cylc-ui.png (watching),
//! 14-cylc-ui-menu.png (the Cylc UI's own menu), 15-cylc-ui-paused.png.

// Demo hubs reset the shared demo users, so the test holds the process-wide demo lock
// for its whole run, across awaits, on purpose.
#![allow(clippy::await_holding_lock)]

use fantoccini::key::Key;
use serde_json::json;
use std::time::Duration;
use steward_e2e::browser::{Browser, DemoHub};
use steward_e2e::cylc::{require_cylc, CylcUser, Workflow};

const T: Duration = Duration::from_secs(30);
const LONG: Duration = Duration::from_secs(120);
const WF: &str = "demo-forecast";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cylc_ui_in_chromium_through_steward() {
    if !require_cylc("the_cylc_ui_in_chromium_through_steward") {
        return;
    }
    let hub = DemoHub::start_with_args(&["--cylc"]);
    let alice = CylcUser::existing("alice");
    let wf = Workflow::adopt(&alice, WF);
    wf.wait_for(LONG, Workflow::status, |s| s.as_deref() == Some("running"));

    let bob = Browser::start("bob-cylc", &hub.base, 1280, 800).await;
    bob.goto("/hub/").await;
    bob.wait_css("#login-user", T).await;
    bob.type_focused(&("bob".to_string() + &Key::Tab)).await;
    bob.type_focused(&(hub.password("bob") + &Key::Enter)).await;
    bob.wait_js(
        "!document.getElementById('top').hidden",
        T,
        "the signed-in header",
    )
    .await;

    // The first visit starts alice's cylc hubapp; the Cylc UI lists her workflow.
    bob.goto("/user/alice/cylc/").await;
    bob.wait_js(
        &format!(
            "document.body && document.body.innerText.includes({})",
            json!(WF)
        ),
        LONG,
        "the Cylc UI listing alice's workflow",
    )
    .await;
    // Let the workflow's state icons settle before the picture.
    tokio::time::sleep(Duration::from_secs(3)).await;
    bob.screenshot("13-cylc-ui").await;

    // Raise privileges in Steward (its API, with the password again), then pause from
    // the Cylc UI's own menu: click the workflow's icon, then "Pause".
    let raised = bob
        .js_async(&format!(
            r#"const done = arguments[arguments.length - 1];
            (async () => {{
              const me = await (await fetch('/hub/api/me')).json();
              const r = await fetch('/hub/api/elevate', {{method: 'POST',
                headers: {{'content-type': 'application/json', 'x-csrf-token': me.csrf}},
                body: JSON.stringify({{class: 'execute', password: {pw}}})}});
              return r.status;
            }})().then(done, e => done(String(e)));"#,
            pw = json!(hub.password("bob")),
        ))
        .await;
    assert_eq!(raised, 200, "{raised}");
    let opened = bob
        .wait_js(
            &format!(
                r#"(() => {{
                  const name = [...document.querySelectorAll('.c-gscan-workflow-name')]
                    .find(e => e.textContent.includes({wf}));
                  if (!name) return false;
                  const link = name.closest('a, .v-list-item');
                  const row = link && link.parentElement;
                  const icon = row && [...row.children].find(c => c !== link);
                  if (!icon) return false;
                  icon.dispatchEvent(new MouseEvent('click', {{bubbles: true}}));
                  return document.querySelectorAll('.c-mutation-menu-item').length > 0;
                }})()"#,
                wf = json!(WF)
            ),
            T,
            "the Cylc UI's mutation menu for the workflow",
        )
        .await;
    assert_eq!(opened, true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    bob.screenshot("14-cylc-ui-menu").await;
    let clicked = bob
        .wait_js(
            r#"(() => {
              const item = [...document.querySelectorAll('.c-mutation-menu-item')]
                .find(e => (e.querySelector('.v-list-item-title') || e).textContent.trim().startsWith('Pause'));
              if (!item || item.classList.contains('v-list-item--disabled')) return false;
              item.click();
              return true;
            })()"#,
            T,
            "an enabled Pause item in the Cylc UI's menu",
        )
        .await;
    assert_eq!(clicked, true);
    wf.wait_for(LONG, Workflow::status, |s| s.as_deref() == Some("paused"));
    // The Cylc UI shows it, live (no reload).
    bob.wait_js(
        "document.body && /paused/i.test(document.body.innerHTML)",
        LONG,
        "the Cylc UI showing the workflow paused",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    bob.screenshot("15-cylc-ui-paused").await;
    bob.close().await;
    let audited = hub.audit_records(|r| {
        r["kind"] == "outcome" && r["actor"] == "bob" && r["owner"] == "alice" && r["op"] == "pause"
    });
    assert!(
        !audited.is_empty(),
        "bob's pause from the page has no outcome"
    );
    drop(wf);
}
