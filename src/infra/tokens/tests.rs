use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use secrecy::SecretString;

use super::*;

fn qid() -> QueueId {
    QueueId::parse("qid").unwrap()
}

fn id(s: &str) -> SaleId {
    SaleId::parse(s).unwrap()
}

fn keys_from(pems: &[&str]) -> Keys {
    let pems: Vec<SecretString> = pems.iter().map(|p| SecretString::from(*p)).collect();
    Keys::from_pems(&pems, "waitroom").unwrap()
}

fn keys() -> Keys {
    keys_from(&[&generate_pem()])
}

#[test]
fn round_trip_and_kinds_are_not_interchangeable() {
    let k = keys();
    let q = k.queue_token(&id("s1"), &qid(), 42, 1, 60, None);
    assert_eq!(k.verify_queue(&q, &id("s1")).unwrap().t, 42);
    assert_eq!(
        k.verify_ticket(&q, &id("s1")).unwrap_err(),
        TokenError::WrongType
    );
    assert_eq!(
        k.verify_queue(&q, &id("s2")).unwrap_err(),
        TokenError::WrongSale
    );
    let t = k.ticket(&id("s1"), &qid(), None, (now_secs() + 60) * 1000);
    assert_eq!(k.verify_ticket(&t, &id("s1")).unwrap().jti, qid());
    assert_eq!(
        k.verify_queue(&t, &id("s1")).unwrap_err(),
        TokenError::WrongType
    );
    assert_eq!(unverified_subject(&t).as_deref(), Some("qid"));
    assert_eq!(unverified_subject("garbage"), None);
}

#[test]
fn tampering_other_keys_and_expiry_are_refused() {
    let k = keys();
    let q = k.queue_token(&id("s1"), &qid(), 42, 1, 60, None);
    let other = keys();
    assert_eq!(
        other.verify_queue(&q, &id("s1")).unwrap_err(),
        TokenError::BadSignature
    );
    // Swap the payload for one claiming an earlier place: the signature no longer matches.
    let forged = k.queue_token(&id("s1"), &qid(), 1, 1, 60, None);
    let parts: Vec<&str> = q.split('.').collect();
    let fparts: Vec<&str> = forged.split('.').collect();
    let spliced = format!("{}.{}.{}", parts[0], fparts[1], parts[2]);
    assert_eq!(
        k.verify_queue(&spliced, &id("s1")).unwrap_err(),
        TokenError::BadSignature
    );
    assert_eq!(
        k.verify_queue("garbage", &id("s1")).unwrap_err(),
        TokenError::Malformed
    );
    assert_eq!(
        k.verify_queue("a.b.c", &id("s1")).unwrap_err(),
        TokenError::Malformed
    );
    let expired = k.queue_token(&id("s1"), &qid(), 42, 1, -60, None);
    assert_eq!(
        k.verify_queue(&expired, &id("s1")).unwrap_err(),
        TokenError::Expired
    );
    // Within the 2 s leeway (not jsonwebtoken's default 60 s) a token still verifies.
    let just = k.queue_token(&id("s1"), &qid(), 42, 1, -1, None);
    assert!(k.verify_queue(&just, &id("s1")).is_ok());
    let past_leeway = k.ticket(&id("s1"), &qid(), None, (now_secs() - 10) * 1000);
    assert_eq!(
        k.verify_ticket(&past_leeway, &id("s1")).unwrap_err(),
        TokenError::Expired
    );
}

#[test]
fn another_issuer_is_refused() {
    let pem = generate_pem();
    let ours = keys_from(&[&pem]);
    let theirs = Keys::from_pems(&[SecretString::from(pem)], "elsewhere").unwrap();
    let t = theirs.ticket(&id("s1"), &qid(), None, (now_secs() + 60) * 1000);
    assert_eq!(
        ours.verify_ticket(&t, &id("s1")).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn alg_none_is_refused() {
    let k = keys();
    let q = k.queue_token(&id("s1"), &qid(), 42, 1, 60, None);
    let body = q.split('.').nth(1).unwrap();
    let none = format!("{}.{body}.", B64.encode(r#"{"alg":"none"}"#));
    assert_eq!(
        k.verify_queue(&none, &id("s1")).unwrap_err(),
        TokenError::Malformed
    );
}

#[test]
fn each_kind_is_pinned_to_its_algorithm() {
    let k = keys();
    let q = k.queue_token(&id("s1"), &qid(), 42, 1, 60, None);
    let t = k.ticket(&id("s1"), &qid(), None, (now_secs() + 60) * 1000);
    let alg = |tok: &str| {
        let h = B64.decode(tok.split('.').next().unwrap()).unwrap();
        serde_json::from_slice::<serde_json::Value>(&h).unwrap()["alg"].clone()
    };
    assert_eq!((alg(&q), alg(&t)), ("HS256".into(), "EdDSA".into()));
    // Validly signed, but each kind under the other algorithm: refused.
    let claims = k.verify_queue(&q, &id("s1")).unwrap();
    let q_as_eddsa = k.sign(Kind::Ticket, &claims);
    assert_eq!(
        k.verify_queue(&q_as_eddsa, &id("s1")).unwrap_err(),
        TokenError::Malformed
    );
    let claims = k.verify_ticket(&t, &id("s1")).unwrap();
    let t_as_hs256 = k.sign(Kind::Queue, &claims);
    assert_eq!(
        k.verify_ticket(&t_as_hs256, &id("s1")).unwrap_err(),
        TokenError::Malformed
    );
    // A header swapped onto another body breaks the signature.
    let t_parts: Vec<&str> = t.split('.').collect();
    let q_body = q.split('.').nth(1).unwrap();
    let mixed = format!("{}.{q_body}.{}", t_parts[0], t_parts[2]);
    assert_eq!(
        k.verify_queue(&mixed, &id("s1")).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn rotation_verifies_old_and_new() {
    let old = generate_pem();
    let new = generate_pem();
    let before = keys_from(&[&old]);
    let after = keys_from(&[&new, &old]);
    let q = before.queue_token(&id("s1"), &qid(), 42, 1, 60, None);
    assert!(after.verify_queue(&q, &id("s1")).is_ok());
    let t = before.ticket(&id("s1"), &qid(), None, (now_secs() + 60) * 1000);
    assert!(after.verify_ticket(&t, &id("s1")).is_ok());
    assert_eq!(after.jwks()["keys"].as_array().unwrap().len(), 2);
}

#[test]
fn jwks_kid_is_the_rfc_7638_thumbprint() {
    // RFC 8037 appendix A: the private key of A.1, its JWK thumbprint from A.3.
    let d = B64
        .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
        .unwrap();
    let key = SigningKey::from_bytes(&d.try_into().unwrap());
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let keys = keys_from(&[&pem]);
    let jwk = &keys.jwks()["keys"][0];
    assert_eq!(jwk["kid"], "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    assert_eq!(jwk["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
    assert_eq!(
        (&jwk["kty"], &jwk["crv"], &jwk["alg"], &jwk["use"]),
        (
            &"OKP".into(),
            &"Ed25519".into(),
            &"EdDSA".into(),
            &"sig".into()
        )
    );
}

#[test]
fn pkcs8_v1_pems_from_before_still_load() {
    // RFC 8410 section 10.3: a v1 PKCS#8 key without the public key, as keygen used to write.
    let v1 = "-----BEGIN PRIVATE KEY-----\n\
              MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
              -----END PRIVATE KEY-----\n";
    let k = keys_from(&[v1]);
    let t = k.ticket(&id("s1"), &qid(), None, (now_secs() + 60) * 1000);
    assert!(k.verify_ticket(&t, &id("s1")).is_ok());
    assert!(Keys::from_pems(&[SecretString::from("not a key")], "waitroom").is_err());
    assert!(Keys::from_pems(&[], "waitroom").is_err());
}

#[test]
fn admin_sessions_are_their_own_kind_and_bound_to_the_admin_token() {
    let k = keys();
    let s = k.admin_session(b"admin-secret", 60);
    assert_eq!(
        k.verify_admin_session(&s, b"admin-secret").unwrap().sub,
        "admin"
    );
    assert!(!s.contains("admin-secret"));
    // Another admin token (rotated) or another key: no longer a session.
    assert_eq!(
        k.verify_admin_session(&s, b"rotated").unwrap_err(),
        TokenError::BadSignature
    );
    assert!(keys().verify_admin_session(&s, b"admin-secret").is_err());
    // A session is neither a ticket nor a queue token, and neither of those is a session.
    // (Its audience, `ADMIN_AUD`, cannot even be named as a sale: it is no `SaleId`.)
    assert!(SaleId::parse(ADMIN_AUD).is_err());
    assert!(k.verify_ticket(&s, &id("s1")).is_err());
    assert!(k.verify_queue(&s, &id("s1")).is_err());
    let t = k.ticket(&id("s1"), &qid(), None, (now_secs() + 60) * 1000);
    let q = k.queue_token(&id("s1"), &qid(), 42, 1, 60, None);
    for other in [t, q, "garbage".to_string()] {
        assert!(k.verify_admin_session(&other, b"admin-secret").is_err());
    }
    let expired = k.admin_session(b"admin-secret", -60);
    assert_eq!(
        k.verify_admin_session(&expired, b"admin-secret")
            .unwrap_err(),
        TokenError::Expired
    );
}

fn grant<'a>(sale: &'a SaleId, origin: &'a str, exp: i64) -> OrderGrant<'a> {
    OrderGrant {
        order_id: uuid::Uuid::now_v7(),
        sale,
        quantity: 2,
        total_cents: 5000,
        shop_origin: origin,
        exp,
    }
}

#[test]
fn hand_off_tokens_are_their_own_kind_for_one_shop() {
    let k = keys();
    let sale = id("s1");
    let shop = "https://shop.example";
    let o = k.order_token(&grant(&sale, shop, now_secs() + 60));
    let claims = k.verify_order(&o, shop).unwrap();
    assert_eq!((claims.typ.as_str(), claims.quantity), (ORDER_TYP, 2));
    assert_eq!((claims.sale, claims.total_cents), (sale.to_string(), 5000));
    let header = jsonwebtoken::decode_header(&o).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert!(
        header.kid.is_some(),
        "the shop finds the key in the JWKS by kid"
    );
    assert_eq!(
        k.verify_order(&o, "https://evil.example").unwrap_err(),
        TokenError::WrongSale
    );
    // Never a ticket, a queue token or an admin session, and none of those is one.
    assert!(k.verify_ticket(&o, &sale).is_err());
    assert!(k.verify_queue(&o, &sale).is_err());
    assert!(k.verify_admin_session(&o, b"admin-secret").is_err());
    let t = k.ticket(&sale, &qid(), None, (now_secs() + 60) * 1000);
    let q = k.queue_token(&sale, &qid(), 42, 1, 60, None);
    let a = k.admin_session(b"admin-secret", 60);
    for other in [t, q, a, "garbage".to_string()] {
        assert!(k.verify_order(&other, shop).is_err());
    }
    let expired = k.order_token(&grant(&sale, shop, now_secs() - 60));
    assert_eq!(
        k.verify_order(&expired, shop).unwrap_err(),
        TokenError::Expired
    );
    assert_eq!(
        keys().verify_order(&o, shop).unwrap_err(),
        TokenError::BadSignature
    );
}
