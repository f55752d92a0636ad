//! A real Chromium drives the shopper page at `/s/{sale}` against the real app, through a tiny
//! W3C WebDriver client (the kit's `webdriver`: plain JSON over HTTP to a chromedriver this
//! test starts).
//!
//! Skipped, loudly, when `WAITROOM_CHROMEDRIVER` is unset (scripts/test sets it); once it is
//! set, a browser that will not start is a failure. Screenshots land in `target/browser/`.

mod dashboard;
mod draw;
mod handoff;
mod sizes;

use serde_json::json;

use waitroom_testkit::webdriver::{out_dir, Driver};
use waitroom_testkit::*;

/// chromedriver and the Chromium to drive, with the screenshots' folder made; None (said
/// loudly) when `WAITROOM_CHROMEDRIVER` is unset and the test is skipped.
pub(crate) fn browser_env() -> Option<(String, Option<String>)> {
    let Ok(chromedriver) = std::env::var("WAITROOM_CHROMEDRIVER") else {
        eprintln!("\n!!! SKIPPED the browser test: WAITROOM_CHROMEDRIVER is not set !!!\n");
        return None;
    };
    std::fs::create_dir_all(out_dir()).unwrap();
    Some((chromedriver, std::env::var("WAITROOM_CHROMIUM").ok()))
}

/// Two shoppers in two Chromium windows: both queue before the sale opens, A is let in and
/// buys the only unit, B is told it sold out; A's unpaid hold then lapses and B gets the unit.
#[tokio::test]
async fn two_shoppers_in_chromium_queue_buy_sell_out_and_get_a_released_unit() {
    let Ok(chromedriver) = std::env::var("WAITROOM_CHROMEDRIVER") else {
        eprintln!("\n!!! SKIPPED the browser test: WAITROOM_CHROMEDRIVER is not set !!!");
        eprintln!("!!! (scripts/test sets it; or point it at a chromedriver) !!!\n");
        return;
    };
    // In a process of its own: the logs checked below are this test's instance's only.
    if !alone!(two_shoppers_in_chromium_queue_buy_sell_out_and_get_a_released_unit) {
        return;
    }
    let chromium = std::env::var("WAITROOM_CHROMIUM").ok();
    capture_logs();
    let _ = std::fs::remove_dir_all(out_dir()); // no stale failure shots from an earlier run
    std::fs::create_dir_all(out_dir()).unwrap();
    let app = spawn_app().await;
    let extra = json!({ "ticket_ttl_secs": 60, "max_per_order": 1, "hold_secs": 6 });
    let sale = app.create_sale_with(1, 50, extra).await;
    let page = app.url(&format!("/s/{sale}"));
    let driver = Driver::start(&chromedriver).await;
    let non_empty = |t: &str| !t.is_empty();

    // 1-2. Both get in line before the sale opens: A first, then B.
    let a = driver.session("a", chromium.as_deref()).await;
    a.join(&page, "1").await;
    let b = driver.session("b", chromium.as_deref()).await;
    b.join(&page, "2").await;
    let queue_len = app.stats(&sale).await["queue_len"].clone();
    assert_eq!(queue_len, 2, "{}", b.context().await);
    a.screenshot("1-waiting-a.png").await;
    b.screenshot("2-waiting-b.png").await;

    // 3. Opening admits A, pushed over the live stream; A buys the only unit.
    app.admin(&sale, "open").await;
    a.wait("admitted", "#buy", non_empty).await;
    assert!(a.displayed("#buy").await, "{}", a.context().await);
    let conn = a.attr("#conn", "data-conn").await;
    assert_eq!(conn, "live", "not live: {}", a.context().await);
    a.screenshot("3-admitted.png").await;
    // The page hands the ticket to the shop's origin as a cookie the gate accepts.
    let gate = a
        .exec(
            "const x = new XMLHttpRequest(); \
             x.open('GET', '/api/gate?sale=' + arguments[0], false); x.send(); return x.status;",
            json!([sale]),
        )
        .await;
    assert_eq!(
        gate,
        json!(204),
        "gate with the page's cookie: {}",
        a.context().await
    );
    a.click("#buy").await;
    let order_id = a.wait("purchased", "#order-id", non_empty).await;
    // No checkout_url: the page says until when the units are held, and who completes it.
    let hold = a.text("#order-hold").await;
    assert!(hold.contains("held for you until"), "no deadline: {hold:?}");
    assert!(hold.contains("shop completes the payment"), "{hold:?}");
    assert!(!a.displayed("#pay").await, "no payment page to continue to");
    let key = json!([format!("waitroom:{sale}:token")]);
    let js = "return localStorage.getItem(arguments[0]);";
    let token = a.exec(js, key).await;
    let token = token.as_str().expect("the queue token is in localStorage");
    // The token alone is refused: it is bound to A's session cookie.
    let bare = app
        .client
        .get(app.url(&format!("/api/sales/{sale}/status")));
    let bare = bare.bearer_auth(token).send().await.unwrap();
    assert_eq!(bare.status(), 403, "a token without its browser's cookie");
    let a_sid = a.cookie("wr_sid").await;
    remember_sid(&a_sid);
    let status = app.status(&sale, token).await;
    assert_eq!(status["status"], "purchased", "{status}");
    assert_eq!(status["order_id"], order_id.as_str(), "{status}");
    let stats = app.stats(&sale).await;
    let sold = sold_remaining(&stats);
    assert_eq!(sold, (Some(1), Some(0)), "{stats}");
    a.screenshot("4-purchased.png").await;

    // 4. B, still in line, is told over its live stream that the last unit went: it is held
    // for A's payment, so B waits on as first on the waitlist.
    let note = b
        .wait("waiting", "#wait-note", |t| t.contains("held for payment"))
        .await;
    assert!(note.contains("1 unit is held"), "{note}");
    assert_eq!(b.text("#wait-title").await, "You’re on the waitlist");
    let conn = b.attr("#conn", "data-conn").await;
    assert_eq!(conn, "live", "B heard it by polling: {}", b.context().await);
    b.screenshot("5-waitlist.png").await;

    // 5. A reload keeps the purchase: the token in localStorage holds the place.
    a.reload().await;
    let again = a.wait("purchased", "#order-id", non_empty).await;
    assert_eq!(again, order_id, "{}", a.context().await);

    // 6. A's hold lapses unpaid: the unit comes back, and B, still listening, is let in.
    b.wait("admitted", "#buy", non_empty).await;
    b.screenshot("6-restocked-b.png").await;
    b.click("#buy").await;
    b.wait("purchased", "#order-id", |t| !t.is_empty() && t != order_id)
        .await;
    let sold = app.stats(&sale).await["sold"].clone();
    assert_eq!(sold, 1, "A's lapsed order and B's new one: one unit sold");

    // 7. A's payment arrives after all, too late: a reload tells A it will be refunded.
    app.pay(&order_id, "succeeded").await;
    a.reload().await;
    let refund = a.wait("refund_due", "#refund-text", non_empty).await;
    assert!(refund.contains("refunded"), "{refund}");
    a.screenshot("7-refund-due.png").await;

    for br in [&a, &b] {
        let errors = br.js_errors().await;
        assert!(errors.is_empty(), "browser {}: {errors:#?}", br.name);
    }
    // 8. No token, ticket or session id of either shopper ever reached a log line.
    let mut secrets = vec![token.to_string(), a_sid, b.cookie("wr_sid").await];
    for br in [&a, &b] {
        for what in ["token", "ticket"] {
            let key = json!([format!("waitroom:{sale}:{what}")]);
            let v = br.exec(js, key).await;
            secrets.extend(v.as_str().map(str::to_string));
        }
    }
    let logs = captured_logs();
    assert!(
        logs.contains("/api/sales/{id}/queue"),
        "no request spans in the logs"
    );
    for secret in secrets.iter().filter(|s| s.len() > 8) {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret in the logs: {secret}"
        );
    }
    a.close().await;
    b.close().await;
    drop(driver);
}

/// A sale asking a proof-of-work: the page solves it in a worker, showing its progress, and
/// gets a place; the server saw a proof (it refuses a join without one).
#[tokio::test]
async fn a_sale_asking_proof_of_work_is_joined_through_the_page() {
    let Some((chromedriver, chromium)) = browser_env() else {
        return;
    };
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(5, 50, json!({ "pow_difficulty": 12 }))
        .await;
    let refused = app.join_raw(&sale, None).await;
    assert_eq!(refused.status(), 400, "no proof, no place");
    let driver = Driver::start(&chromedriver).await;
    let s = driver.session("pow", chromium.as_deref()).await;
    s.goto(&app.url(&format!("/s/{sale}"))).await;
    s.wait("join", "#join", |t| !t.is_empty()).await;
    // Remember the last progress text shown, however briefly.
    let watch = "const el = document.querySelector('#pow-status'); window.__pow = ''; \
        new MutationObserver(() => { if (el.textContent) window.__pow = el.textContent; }) \
        .observe(el, { childList: true, characterData: true, subtree: true });";
    s.exec(watch, json!([])).await;
    s.click("#join").await;
    s.wait("closed|waiting", "#position", |t| t == "1").await;
    let shown = s.exec("return window.__pow;", json!([])).await;
    let shown = shown.as_str().unwrap_or_default().to_string();
    assert!(
        shown.starts_with("Checking your browser") && shown.ends_with("hashes"),
        "progress shown: {shown:?}"
    );
    assert!(
        !s.displayed("#pow-status").await,
        "progress hidden once joined"
    );
    assert_eq!(app.stats(&sale).await["queue_len"], 1);
    let errors = s.js_errors().await;
    assert!(errors.is_empty(), "{errors:#?}");
    s.close().await;
}
