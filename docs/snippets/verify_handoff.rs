use jsonwebtoken::{decode, decode_header, jwk::JwkSet, Algorithm, DecodingKey, Validation};

/// A buyer's hand-off token (the form field `waitroom_token`), checked: `jwks` is waitroom's
/// `/.well-known/jwks.json` (cache it; fetch it again for an unknown `kid`), `origin` your
/// shop's own, e.g. `https://shop.example`. Then redeem the claims' `jti` (the order id) once.
pub fn verify_handoff(
    token: &str,
    jwks: &JwkSet,
    origin: &str,
) -> Result<serde_json::Value, String> {
    let kid = decode_header(token)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("no kid")?;
    let key =
        DecodingKey::from_jwk(jwks.find(&kid).ok_or("unknown kid")?).map_err(|e| e.to_string())?;
    let mut rules = Validation::new(Algorithm::EdDSA); // the signature and `exp`
    rules.set_audience(&[origin]);
    rules.set_required_spec_claims(&["exp", "aud"]);
    let claims = decode::<serde_json::Value>(token, &key, &rules)
        .map_err(|e| e.to_string())?
        .claims;
    if claims["typ"] != "wr-order" {
        return Err("not a hand-off token".into());
    }
    Ok(claims) // {jti, sale, quantity, total_cents, iat, exp, …}
}
