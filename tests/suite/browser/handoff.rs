//! The page after buying, in Chromium: it keeps listening (the sale's units left go down as
//! others buy, the order turns paid when the payment webhook says so), and *Continue to
//! payment* posts the hand-off token to the shop's page, which verifies it from the JWKS.

use serde_json::json;

use waitroom_testkit::shop::Shop;
use waitroom_testkit::webdriver::Driver;
use waitroom_testkit::*;

#[tokio::test]
async fn a_buyer_sees_the_sale_move_pays_at_the_shop_and_sees_the_order_paid() {
    let Some((chromedriver, chromium)) = super::browser_env() else {
        return;
    };
    let app = spawn_app().await;
    let shop = Shop::start(&app.addr).await;
    let extra = json!({ "checkout_url": shop.pay_url(), "hold_secs": 600 });
    let sale = app.create_sale_with(5, 50, extra).await;
    let page = app.url(&format!("/s/{sale}"));
    let driver = Driver::start(&chromedriver).await;
    let b = driver.session("buyer", chromium.as_deref()).await;

    // 1. Join, get in, buy.
    b.join(&page, "1").await;
    app.admin(&sale, "open").await;
    b.wait("admitted", "#buy", |t| !t.is_empty()).await;
    b.click("#buy").await;
    let order_id = b.wait("purchased", "#order-id", |t| !t.is_empty()).await;
    assert_eq!(b.text("#order-status").await, "Awaiting payment");
    assert!(b.displayed("#pay").await, "{}", b.context().await);
    assert_eq!(b.attr("#pay-form", "action").await, shop.pay_url());
    assert_eq!(b.attr("#pay-form", "method").await, "post");
    let hold = b.text("#order-hold").await;
    assert!(hold.contains("held for you until"), "{hold}");

    // 2. Another shopper buys: the buyer's page, still listening, shows one unit fewer.
    let other = app.join(&sale).await.token;
    let ticket = app.ticket(&sale, &other).await;
    assert_eq!(app.checkout(&sale, &ticket, 1).await.status(), 201);
    b.wait("purchased", "#units-left", |t| t.starts_with("3 of 5"))
        .await;
    assert_eq!(b.attr("#conn", "data-conn").await, "live");
    b.screenshot("handoff-1-purchased.png").await;

    // 3. Continue to payment: the shop verifies the token it was posted, never in the URL.
    b.click("#pay").await;
    let read = "const r = document.querySelector('#result'); return r ? r.textContent : '';";
    let result = eventually(WAIT, || async {
        let t = b.exec(read, json!([])).await;
        t.as_str().filter(|t| !t.is_empty()).map(str::to_string)
    })
    .await
    .expect("the shop's page");
    assert_eq!(result, format!("verified order {order_id}: 1 for 2500"));
    assert_eq!(
        b.get("/url").await,
        json!(shop.pay_url()),
        "no token in the URL"
    );
    b.screenshot("handoff-2-shop.png").await;

    // 4. Back on the sale page (a fresh load): still purchased, still live; the payment
    // webhook turns the order paid without a reload.
    b.goto(&page).await;
    let again = b.wait("purchased", "#order-id", |t| !t.is_empty()).await;
    assert_eq!(again, order_id);
    b.wait("purchased", "#conn", |t| t == "live").await;
    app.pay(&order_id, "succeeded").await;
    b.wait("purchased", "#order-status", |t| t == "Paid").await;
    assert!(!b.displayed("#pay").await, "nothing left to pay");
    b.screenshot("handoff-3-paid.png").await;

    let errors = b.js_errors().await;
    assert!(errors.is_empty(), "{errors:#?}");
    b.close().await;
    shop.stop().await;
}
