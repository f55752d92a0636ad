//! The operator's dashboard in Chromium: sign in, watch a sale's numbers move and its charts
//! draw while shoppers (joined through the API) are let in, at desktop and phone width, then
//! change the admission rate from the page; the webhooks card shows an endpoint whose receiver
//! fails. Screenshots: target/browser/dashboard*.png.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use waitroom_testkit::webdriver::{out_dir, Browser, Driver, WAIT};
use waitroom_testkit::*;

/// Runs `js` (a function body returning a value) until the value passes `ok`, or fails with
/// a screenshot after `WAIT`.
async fn until(b: &Browser<'_>, what: &str, js: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT * 2;
    loop {
        let v = b.exec(js, json!([])).await;
        if ok(&v) {
            return v;
        }
        if Instant::now() > deadline {
            b.screenshot("failed-dashboard.png").await;
            panic!("dashboard: {what}; last saw {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn number(sel: &str) -> String {
    format!("const e = document.querySelector('{sel}'); return e ? e.textContent.replace(/[^0-9.]/g, '') : '';")
}

fn as_int(v: &Value) -> Option<i64> {
    v.as_str().and_then(|s| s.parse().ok())
}

#[tokio::test]
async fn the_dashboard_signs_in_watches_a_sale_and_changes_its_rate() {
    let Ok(chromedriver) = std::env::var("WAITROOM_CHROMEDRIVER") else {
        eprintln!(
            "\n!!! SKIPPED the dashboard browser test: WAITROOM_CHROMEDRIVER is not set !!!\n"
        );
        return;
    };
    let chromium = std::env::var("WAITROOM_CHROMIUM").ok();
    std::fs::create_dir_all(out_dir()).unwrap();
    let app = spawn_console_app().await;
    let sale = app
        .create_sale_with(20, 2, json!({ "name": "Spring drop" }))
        .await;
    for _ in 0..8 {
        app.join(&sale).await;
    }
    // An endpoint of this sale whose receiver answers 500 to the one event it gets.
    let receiver = Receiver::start().await;
    receiver.answer(Answer::Status(500));
    let endpoint: Value = app
        .client
        .post(app.url("/api/admin/webhooks"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"url": receiver.url(), "sales": [sale]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    receiver.trust(endpoint["secret"].as_str().unwrap());
    sqlx::query(
        "INSERT INTO outbox (id, type, sale_id, data) VALUES ($1, 'sale.opened', $2, '{}')",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(&sale)
    .execute(&pg().await)
    .await
    .unwrap();
    let driver = Driver::start(&chromedriver).await;
    let b = driver
        .session_sized("ops", chromium.as_deref(), false)
        .await;
    b.goto(&app.url(&format!("/admin#sale={sale}"))).await;
    let state = "return document.body.dataset.state;";
    until(&b, "the sign-in form", state, |v| v == "signin").await;

    // 1. A wrong token is said so; the right one signs in. Neither is kept by the page.
    b.type_into("#token", "not-the-token").await;
    b.click("#signin-form button").await;
    let error = "return document.querySelector('#signin-error').textContent;";
    until(&b, "the wrong token refused", error, |v| {
        v.as_str().is_some_and(|t| !t.is_empty())
    })
    .await;
    b.type_into("#token", ADMIN_TOKEN).await;
    b.click("#signin-form button").await;
    until(&b, "signed in", state, |v| v == "live").await;
    let kept = "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie + location.href;";
    let kept = b.exec(kept, json!([])).await;
    assert!(
        !kept.as_str().unwrap().contains(ADMIN_TOKEN),
        "the token kept: {kept}"
    );
    let cookie = b.get("/cookie/wr_admin").await;
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");

    // 2. The sale's numbers, live: eight in line; opening lets them in at 2/s.
    let line = number("#numbers [data-k=queue_len]");
    until(&b, "eight in line", &line, |v| as_int(v) == Some(8)).await;
    // The list is updated in place, so the handle taken now still reads after the samples
    // that follow: a list rebuilt every second would swallow a tap landing mid-rebuild.
    let pick = b.find(&format!(".sale-pick[data-sale='{sale}']")).await;
    let pick_text = || async { b.get(&format!("/element/{pick}/text")).await };
    let picked = pick_text().await;
    assert!(
        picked.as_str().unwrap().starts_with("Spring drop"),
        "{picked}"
    );
    app.admin(&sale, "open").await;
    let admitted = number("#numbers [data-k=admitted_total]");
    until(&b, "admissions counted", &admitted, |v| {
        as_int(v).is_some_and(|n| n > 0)
    })
    .await;
    until(&b, "the line shrinking", &line, |v| {
        as_int(v).is_some_and(|n| n < 8)
    })
    .await;
    until(&b, "all eight let in", &admitted, |v| as_int(v) == Some(8)).await;
    let badge = b.text("#sale-badge").await;
    assert_eq!(badge, "Open");
    let deadline = Instant::now() + WAIT;
    while !pick_text().await.as_str().unwrap().contains("0 in line") {
        assert!(
            Instant::now() < deadline,
            "the list still shows {}",
            pick_text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 3. The charts are uPlot's, drawn on canvases of real size.
    let canvases = "return [...document.querySelectorAll('#charts .uplot canvas')]\
        .map(c => [c.width, c.height]);";
    let drawn = until(&b, "seven charts drawn", canvases, |v| {
        let all = v.as_array().cloned().unwrap_or_default();
        all.len() == 7
            && all
                .iter()
                .all(|c| c[0].as_i64() > Some(0) && c[1].as_i64() > Some(0))
    })
    .await;
    eprintln!("charts: {drawn}");

    // The webhooks card: this sale's endpoint, retrying, its last answer 500.
    let row = format!(
        "document.querySelector('#webhooks-refresh').click(); \
         const r = [...document.querySelectorAll('#webhooks tbody tr')] \
           .find(r => r.textContent.includes('{}')); \
         return r ? [r.dataset.state, r.textContent] : null;",
        receiver.url()
    );
    until(&b, "the endpoint failing in the webhooks card", &row, |v| {
        v[0] == "failing" && v[1].as_str().is_some_and(|t| t.contains("500"))
    })
    .await;
    let show = "document.querySelector('#webhooks-card').scrollIntoView(); return 1;";
    b.exec(show, json!([])).await;
    b.screenshot("dashboard-webhooks.png").await;
    b.exec("window.scrollTo(0, 0); return 1;", json!([])).await;
    b.screenshot("dashboard.png").await;

    // 4. At phone width: nothing wider than the screen, the charts redrawn to fit.
    let phone = json!({ "width": 412, "height": 915, "deviceScaleFactor": 1, "mobile": true });
    b.cdp("Emulation.setDeviceMetricsOverride", phone).await;
    let fits = "return [document.documentElement.scrollWidth, \
        document.querySelector('#charts .uplot canvas').getBoundingClientRect().width];";
    until(&b, "the page fits a phone", fits, |v| {
        v[0].as_f64().is_some_and(|w| w <= 412.0)
            && v[1].as_f64().is_some_and(|w| w > 100.0 && w <= 412.0)
    })
    .await;
    b.screenshot("dashboard-phone.png").await;
    b.cdp("Emulation.clearDeviceMetricsOverride", json!({}))
        .await;
    let errors = b.js_errors().await;
    assert!(errors.is_empty(), "{errors:#?}");

    // 5. Last, as it needs PATCH /api/admin/sales/{id}: the rate changed from the page.
    b.type_into("#rate", "5").await;
    b.click("#rate-form button").await;
    let msg = "return document.querySelector('#control-msg').textContent;";
    let said = until(&b, "the change answered", msg, |v| {
        v.as_str()
            .is_some_and(|t| t.contains("done") || t.contains("failed") || t.contains("404"))
    })
    .await;
    assert!(
        said.as_str().unwrap().contains("done"),
        "the page says: {said}"
    );
    assert_eq!(app.stats(&sale).await["rate_per_sec"], 5);
    let rate = number("#numbers [data-k=rate_per_sec]");
    until(&b, "the new rate shown", &rate, |v| as_int(v) == Some(5)).await;
    b.close().await;
    let id = endpoint["id"].as_str().unwrap();
    let url = app.url(&format!("/api/admin/webhooks/{id}"));
    let res = app.client.delete(url).bearer_auth(ADMIN_TOKEN).send().await;
    assert_eq!(res.unwrap().status(), 204);
}
