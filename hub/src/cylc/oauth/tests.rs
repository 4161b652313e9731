use super::*;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const NOW: i64 = 1_800_000_000;

fn setup() -> Provider {
    let mut p = Provider::new();
    p.register("alice", "alice-api-token");
    p.register("bob", "bob-api-token");
    p
}

fn auth_params(owner: &str) -> AuthorizeParams {
    AuthorizeParams {
        client_id: client_id_for(owner),
        redirect_uri: callback_for(owner),
        response_type: "code".into(),
        code_challenge: Some(s256_challenge(VERIFIER)),
        code_challenge_method: Some("S256".into()),
        state: Some("st8".into()),
    }
}

/// Runs authorize and returns the code from the redirect.
fn code_for(p: &mut Provider, owner: &str, visitor: &str) -> String {
    let url = p
        .authorize(&auth_params(owner), owner, visitor, NOW)
        .unwrap();
    let q = url.split_once('?').unwrap().1;
    let args: Vec<(String, String)> = serde_urlencoded::from_str(q).unwrap();
    args.into_iter().find(|(k, _)| k == "code").unwrap().1
}

fn token_params(owner: &str, code: &str) -> TokenParams {
    TokenParams {
        client_id: client_id_for(owner),
        client_secret: format!("{owner}-api-token"),
        grant_type: "authorization_code".into(),
        code: code.into(),
        redirect_uri: callback_for(owner),
        code_verifier: VERIFIER.into(),
    }
}

#[test]
fn rfc7636_appendix_b_s256() {
    assert_eq!(
        s256_challenge(VERIFIER),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[test]
fn the_whole_flow_gives_the_visitor_access_to_the_owners_server() {
    let mut p = setup();
    let url = p
        .authorize(&auth_params("alice"), "alice", "bob", NOW)
        .unwrap();
    assert!(url.starts_with("/user/alice/oauth_callback?code="), "{url}");
    // `state` is passed through for the client to check (a wrong one is refused by
    // the single-user server's own check_state, not here).
    assert!(url.ends_with("&state=st8"), "{url}");
    let code = code_for(&mut p, "alice", "bob");
    let (token, body) = p.exchange(&token_params("alice", &code), NOW + 1).unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], TOKEN_TTL_SECS);
    assert!(body["scope"]
        .as_str()
        .unwrap()
        .contains("access:servers!server=alice/"));
    let m = p.user_model(&token, &["ops".to_string()], NOW + 2).unwrap();
    assert_eq!(m["name"], "bob");
    assert_eq!(m["kind"], "user");
    assert_eq!(m["groups"], serde_json::json!(["ops"]));
    let scopes: Vec<&str> = m["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        scopes,
        vec![
            "access:servers!server=alice/",
            "read:users:groups!user=bob",
            "read:users:name!user=bob"
        ]
    );
}

#[test]
fn a_replayed_code_is_refused() {
    let mut p = setup();
    let code = code_for(&mut p, "alice", "bob");
    p.exchange(&token_params("alice", &code), NOW).unwrap();
    let e = p.exchange(&token_params("alice", &code), NOW).unwrap_err();
    assert_eq!(e.code(), "invalid_grant");
}

#[test]
fn a_code_is_consumed_even_by_a_failed_exchange() {
    let mut p = setup();
    let code = code_for(&mut p, "alice", "bob");
    let mut bad = token_params("alice", &code);
    bad.code_verifier = "x".repeat(43);
    assert_eq!(p.exchange(&bad, NOW).unwrap_err().code(), "invalid_grant");
    assert!(p.exchange(&token_params("alice", &code), NOW).is_err());
}

#[test]
fn a_foreign_code_is_refused() {
    let mut p = setup();
    // A code issued for alice's server, presented by bob's server with bob's secret.
    let code = code_for(&mut p, "alice", "carl");
    let mut tp = token_params("bob", &code);
    tp.redirect_uri = callback_for("bob");
    let e = p.exchange(&tp, NOW).unwrap_err();
    assert_eq!(e.code(), "invalid_grant");
    // An unknown code.
    assert_eq!(
        p.exchange(&token_params("alice", "made-up"), NOW)
            .unwrap_err()
            .code(),
        "invalid_grant"
    );
}

#[test]
fn redirect_uri_outside_the_owners_prefix_is_refused() {
    let mut p = setup();
    for uri in [
        "https://evil.example/cb",
        "//evil.example/user/alice/oauth_callback",
        "/user/bob/oauth_callback",
        "/user/alice/../bob/oauth_callback",
        "/user/alice//evil",
        "/user/alicex/oauth_callback",
        "/user/alice/other",
    ] {
        let mut a = auth_params("alice");
        a.redirect_uri = uri.into();
        assert!(p.authorize(&a, "alice", "bob", NOW).is_err(), "{uri}");
    }
    let code = code_for(&mut p, "alice", "bob");
    let mut tp = token_params("alice", &code);
    tp.redirect_uri = "/user/bob/oauth_callback".into();
    assert!(p.exchange(&tp, NOW).is_err());
}

#[test]
fn another_owners_client_id_is_refused() {
    let mut p = setup();
    // The browser was visiting alice's server but the request names bob's client.
    let mut a = auth_params("bob");
    a.redirect_uri = callback_for("bob");
    assert_eq!(
        p.authorize(&a, "alice", "carl", NOW).unwrap_err().code(),
        "invalid_request"
    );
    let mut a = auth_params("alice");
    a.client_id = "jupyterhub-user-nobody".into();
    assert_eq!(
        p.authorize(&a, "alice", "carl", NOW).unwrap_err().code(),
        "invalid_client"
    );
}

#[test]
fn expired_codes_and_tokens_are_refused() {
    let mut p = setup();
    let code = code_for(&mut p, "alice", "bob");
    assert!(p
        .exchange(&token_params("alice", &code), NOW + CODE_TTL_SECS)
        .is_err());
    let code = code_for(&mut p, "alice", "bob");
    let (token, _) = p.exchange(&token_params("alice", &code), NOW).unwrap();
    assert!(p.user_model(&token, &[], NOW + TOKEN_TTL_SECS - 1).is_ok());
    let e = p.user_model(&token, &[], NOW + TOKEN_TTL_SECS).unwrap_err();
    assert_eq!(e.status(), 403, "an unknown token must be 403 for HubAuth");
    p.purge(NOW + TOKEN_TTL_SECS);
    assert!(p.user_model(&token, &[], NOW).is_err());
}

#[test]
fn wrong_verifier_secret_grant_or_pkce_method_is_refused() {
    let mut p = setup();
    let code = code_for(&mut p, "alice", "bob");
    let mut tp = token_params("alice", &code);
    tp.client_secret = "guess".into();
    assert_eq!(p.exchange(&tp, NOW).unwrap_err().status(), 401);
    let mut tp = token_params("alice", &code);
    tp.code_verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK".into();
    assert_eq!(p.exchange(&tp, NOW).unwrap_err().code(), "invalid_grant");
    let mut tp = token_params("alice", "c");
    tp.grant_type = "password".into();
    assert_eq!(
        p.exchange(&tp, NOW).unwrap_err().code(),
        "unsupported_grant_type"
    );
    let mut a = auth_params("alice");
    a.code_challenge_method = Some("plain".into());
    assert!(p.authorize(&a, "alice", "bob", NOW).is_err());
    let mut a = auth_params("alice");
    a.code_challenge = None;
    assert!(p.authorize(&a, "alice", "bob", NOW).is_err());
    let mut a = auth_params("alice");
    a.response_type = "token".into();
    assert_eq!(
        p.authorize(&a, "alice", "bob", NOW).unwrap_err().code(),
        "unsupported_response_type"
    );
}

#[test]
fn logout_and_stop_revoke() {
    let mut p = setup();
    let code = code_for(&mut p, "alice", "bob");
    let (t1, _) = p.exchange(&token_params("alice", &code), NOW).unwrap();
    assert_eq!(p.revoke_visitor("bob"), 1);
    assert!(p.token(&t1, NOW).is_err());
    let code = code_for(&mut p, "alice", "bob");
    let (t2, _) = p.exchange(&token_params("alice", &code), NOW).unwrap();
    p.unregister("alice");
    assert!(p.token(&t2, NOW).is_err());
    assert!(p.client_owner(&client_id_for("alice")).is_none());
}

#[test]
fn errors_have_rfc6749_bodies() {
    let b = OAuthError::InvalidGrant("expired".into()).body();
    assert_eq!(b["error"], "invalid_grant");
    assert!(b["error_description"].as_str().unwrap().contains("expired"));
}
