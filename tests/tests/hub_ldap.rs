//! The hub with the LDAP backend against a real slapd: directory groups feed `group:`
//! keys in policy, a PAM-only account cannot log in, and a directory that goes down
//! refuses new logins with "authentication service unavailable" while existing sessions
//! keep working.

// Demo hubs reset the shared demo users, so each test holds the process-wide demo lock
// for its whole run, across awaits, on purpose.
#![allow(clippy::await_holding_lock)]

use serde_json::{json, Value};
use steward_e2e::slapd::{self, Slapd, SlapdOptions};
use steward_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_logins_feed_directory_groups_into_policy() {
    if !require_root("hub_ldap") || !slapd::available("hub_ldap") {
        return;
    }
    let _l = demo_lock();
    let mut s = Slapd::start(SlapdOptions::default());
    let mut d = Demo::start();
    // Only members of the directory group `auditors` may read other owners' workflows.
    let site = d.data.path().join("policy/site.toml");
    write_root_file(
        &site,
        "[owners.\"*\".\"group:auditors\"]\ndefault = \"READ\"\n",
    );
    d.serve_with(&format!(
        "\n[auth]\nbackend = \"ldap\"\n[auth.ldap]\nurl = \"{}\"\nca_file = \"{}\"\nuser_dn_template = \"{}\"\ngroup_base = \"{}\"\nnested_groups = true\n",
        s.ldaps_url,
        s.ca_file.display(),
        slapd::USER_DN_TEMPLATE,
        slapd::GROUPS
    ));

    let dave = d.client();
    let r = dave
        .post(format!("{}/hub/api/login", d.base))
        .json(&json!({"username": "dave", "password": slapd::password_of("dave")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = get_json(&dave, format!("{}/hub/api/me", d.base)).await;
    assert!(
        me["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "auditors"),
        "{me}"
    );
    // The directory group grants READ through the site policy: dave sees alice's workflows.
    let mut seen = false;
    for _ in 0..40 {
        let ov: Value = get_json(&dave, format!("{}/hub/api/overview", d.base)).await;
        if ov["owners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["owner"] == "alice")
        {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(
        seen,
        "dave (group auditors from LDAP) cannot see alice's workflows"
    );

    // A Unix account that is not in the directory cannot log in with LDAP configured.
    let r = d
        .client()
        .post(format!("{}/hub/api/login", d.base))
        .json(&json!({"username": "carl", "password": d.password("carl")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The directory goes down: new logins get 503, dave's session keeps working.
    s.kill();
    let r = d
        .client()
        .post(format!("{}/hub/api/login", d.base))
        .json(&json!({"username": "alice", "password": slapd::password_of("alice")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "authentication service unavailable"
    );
    let r = dave
        .get(format!("{}/hub/api/me", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "an existing session stopped working when the directory went down"
    );
}
