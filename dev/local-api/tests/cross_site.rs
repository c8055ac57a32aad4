//! What a browser on another site can do with the session cookie (nothing), and the security
//! headers the demo page is served with, over real HTTP.

#[macro_use]
mod common;

use common::{PHONE, StoreKind, System};

for_each_store!(another_sites_form_post_does_not_end_the_session);

/// A session made through the API, and the cookie a browser would hold for it.
async fn verified(system: &System) -> String {
    let started = system.start_verification(PHONE).await;
    let reply = system.token(&started, &system.code_for(PHONE)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["session"].as_str().unwrap().to_owned()
}

async fn logout(
    system: &System,
    cookie: Option<&str>,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> u16 {
    let mut request = system.http.post(format!("{}/user/logout", system.base));
    if let Some(session) = cookie {
        request = request.header("cookie", format!("sms_session={session}"));
    }
    if let Some(session) = bearer {
        request = request.bearer_auth(session);
    }
    // What a browser sends with a form posted from another site's page.
    request = request.header("content-type", "application/x-www-form-urlencoded");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("local-api answers").status().as_u16()
}

async fn reads_back(system: &System, session: &str) -> bool {
    let response = system.http.get(format!("{}/user/info", system.base)).bearer_auth(session).send().await;
    response.expect("local-api answers").status() == 200
}

async fn another_sites_form_post_does_not_end_the_session(store: StoreKind) {
    let system = System::start(store).await;
    let session = verified(&system).await;
    let evil = [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")];
    assert_eq!(logout(&system, Some(&session), None, &evil).await, 403);
    assert_eq!(logout(&system, Some(&session), None, &[("sec-fetch-site", "cross-site")]).await, 403);
    assert_eq!(logout(&system, Some(&session), None, &[("origin", "null")]).await, 403);
    assert!(reads_back(&system, &session).await, "the session survived the cross-site posts");

    // The page the API serves itself may end it with the cookie.
    let own = system.base.clone();
    let same_origin = [("origin", own.as_str()), ("sec-fetch-site", "same-origin")];
    assert_eq!(logout(&system, Some(&session), None, &same_origin).await, 204);
    assert!(!reads_back(&system, &session).await);

    // An app's bearer token is not a browser's ambient credential: no Origin check.
    let session = verified(&system).await;
    assert_eq!(logout(&system, None, Some(&session), &evil).await, 204);
    assert!(!reads_back(&system, &session).await);
}

/// The demo page is served with a CSP that forbids framing (which its `<meta>` cannot say), and
/// the header policy is the page's own plus `frame-ancestors`, so the two cannot drift apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_is_served_with_security_headers() {
    let system = System::start(StoreKind::Memory).await;
    for path in ["/", "/app.js", "/style.css"] {
        let reply = system.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        let header = |name: &str| reply.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(header("content-security-policy").contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
    }
    let page = system.get("/").await.text;
    let meta = page.split("http-equiv=\"Content-Security-Policy\"").nth(1).expect("the page's CSP meta tag");
    let meta_policy =
        meta.split("content=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("content");
    assert_eq!(local_api::PAGE_CSP, format!("{meta_policy}; frame-ancestors 'none'"));
    // The API's own answers are JSON and never framed or sniffed either way; the headers are the
    // page's.
    assert!(system.get("/sms/clients").await.headers.get("content-security-policy").is_none());
}
