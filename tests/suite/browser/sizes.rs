//! Sizes in Chromium: a shopper picks a size while waiting, sees another size grey out live as
//! someone else buys its last unit, sees their own size go and picks again, then buys it.

use serde_json::json;

use waitroom_testkit::webdriver::Driver;
use waitroom_testkit::*;

#[tokio::test]
async fn a_shopper_picks_a_size_watches_sizes_grey_out_live_and_buys() {
    let Some((chromedriver, chromium)) = super::browser_env() else {
        return;
    };
    let app = spawn_app().await;
    let sale = unique("v");
    let sizes = json!([{"id": "38", "name": "EU 38", "units": 1},
                       {"id": "39", "name": "EU 39", "units": 1},
                       {"id": "40", "name": "EU 40", "units": 2}]);
    let body = json!({"id": sale, "name": "Sneaker drop", "price_cents": 12_000,
        "rate_per_sec": 50, "variants": sizes});
    assert_eq!(app.create_sale_json(body).await.status(), 201);
    let page = app.url(&format!("/s/{sale}"));
    let driver = Driver::start(&chromedriver).await;
    let b = driver.session("sizes", chromium.as_deref()).await;
    let size = |id: &str| format!(r#"#size-list [data-variant="{id}"]"#);
    let gone = |id: &str| {
        format!(r#"return document.querySelector('#size-list [data-variant="{id}"]').disabled;"#)
    };

    // Two others get in line first; the browser joins third and picks EU 39 while it waits.
    let first = app.join(&sale).await.token;
    let second = app.join(&sale).await.token;
    b.join(&page, "3").await;
    b.wait("waiting", &size("38"), |t| {
        t.contains("EU 38") && t.contains("1 left")
    })
    .await;
    b.click(&size("39")).await;
    assert_eq!(b.attr(&size("39"), "aria-pressed").await, "true");

    // EU 38's last unit goes to someone else: the waiting page greys it out, live.
    app.admin(&sale, "open").await;
    let t1 = app.ticket(&sale, &first).await;
    assert_eq!(app.checkout_variant(&sale, &t1, "38").await.status(), 201);
    b.wait("waiting|admitted", &size("38"), |t| t.contains("Sold out"))
        .await;
    assert_eq!(b.exec(&gone("38"), json!([])).await, json!(true));
    b.screenshot("sizes-1-greyed.png").await;

    // Then the shopper's own size goes before their turn: the page says so.
    let t2 = app.ticket(&sale, &second).await;
    assert_eq!(app.checkout_variant(&sale, &t2, "39").await.status(), 201);
    b.wait("waiting|admitted", &size("39"), |t| t.contains("Sold out"))
        .await;
    let told = b
        .wait("waiting|admitted", "#message", |t| t.contains("EU 39"))
        .await;
    assert!(told.contains("sold out"), "{told}");

    // Their turn: they pick EU 40 and buy it.
    b.wait("admitted", "#buy", |t| t == "Pick a size").await;
    b.click(&size("40")).await;
    b.wait("admitted", "#buy", |t| t.starts_with("Buy EU 40"))
        .await;
    b.click("#buy").await;
    b.wait("purchased", "#order-id", |t| !t.is_empty()).await;
    assert_eq!(b.text("#order-size").await, "EU 40");
    b.screenshot("sizes-2-bought.png").await;
    let errors = b.js_errors().await;
    assert!(errors.is_empty(), "{errors:#?}");
    b.close().await;
}
