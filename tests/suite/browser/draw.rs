//! The draw on the page: a shopper who joins before the opening sees their entry id, then
//! their rank, and *Check my place* recomputes the draw in the browser (Web Crypto).

use serde_json::json;

use waitroom_testkit::webdriver::Driver;
use waitroom_testkit::*;

#[tokio::test]
async fn a_shopper_sees_their_entry_then_their_rank_and_checks_it_in_the_browser() {
    let Some((chromedriver, chromium)) = super::browser_env() else {
        return;
    };
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(20, 50, json!({ "prequeue": "draw" }))
        .await;
    for _ in 0..5 {
        app.join(&sale).await;
    }
    let driver = Driver::start(&chromedriver).await;
    let s = driver.session("draw", chromium.as_deref()).await;
    s.join(&app.url(&format!("/s/{sale}")), "6").await;
    let entry = s.wait("waiting", "#draw-entry", |t| t.len() == 16).await;
    assert!(s.text("#draw-text").await.contains("in the draw"));
    s.screenshot("draw-1-entry.png").await;

    app.admin(&sale, "open").await;
    let said = s
        .wait("waiting|admitted", "#draw-text", |t| t.contains("rank"))
        .await;
    let res = app
        .client
        .get(app.url(&format!("/api/sales/{sale}/draw/entries")));
    let entries: Vec<String> = res.send().await.unwrap().json().await.unwrap();
    let rank = entries.iter().position(|e| *e == entry).expect("listed") + 1;
    assert!(said.contains(&format!("rank is {rank} of 6")), "{said}");

    s.click("#draw-check").await;
    let verdict = s
        .wait("waiting|admitted", "#draw-result", |t| {
            t.starts_with("Verified") || t.starts_with("Not") || t.starts_with("Could")
        })
        .await;
    assert!(verdict.starts_with("Verified"), "{verdict}");
    assert_eq!(s.attr("#draw-result", "data-verified").await, "yes");
    s.screenshot("draw-2-verified.png").await;
    let errors: Vec<String> = s.js_errors().await;
    assert!(errors.is_empty(), "{errors:#?}");
    s.close().await;
}
