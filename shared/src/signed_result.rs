//! The signed verification result: `/sms/token`'s `verification_token`, which the app's own
//! backend checks offline against the keys `GET /.well-known/jwks.json` publishes.
//!
//! The token is a compact JWS (RFC 7515) with the header `{"alg":"EdDSA","kid":…,"typ":"JWT"}`,
//! signed with Ed25519 (RFC 8037). Its claims are fixed: `iss`, `aud` (the `client_id`), `sub`,
//! `phone_number` (E.164, the number the SMS went to), `phone_number_verified: true`, `iat`,
//! `exp`, `jti`, and `test: true` for a client's test number (no SMS was sent: a backend that
//! sees it in production refuses it).
//!
//! The keys are a JWK Set of Ed25519 keys: the first, with its private part `d`, signs; a second
//! (its `d` may be left out) is only published. That is how a key is rotated without a token
//! that fails to verify: put the new key second, wait until every instance has read it and every
//! cache has expired (both within [`KEYS_REREAD_INTERVAL`] and the JWKS's `max-age`), then swap
//! the two; the old key stays published while tokens it signed may live. In Lambda the set is the
//! Secrets Manager secret `VERIFICATION_KEYS_SECRET_ARN` (README, "The signed result"), read
//! again every [`KEYS_REREAD_INTERVAL`]; `local-api` and tests make a key at start.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::{
    crypto,
    rotation::{READ_TIMEOUT, SecretsManagerSecret},
    secret::{SecretText, VerificationToken},
};

/// The one algorithm the tokens are signed with.
pub const ALGORITHM: &str = "EdDSA";
/// How long an instance signs with (and publishes) the keys it read before reading them again.
pub const KEYS_REREAD_INTERVAL: Duration = Duration::from_secs(300);
/// The issuer of an app not told its base URL: `local-api`'s default address.
pub const LOCAL_ISSUER: &str = "http://127.0.0.1:3000";
/// How long a JWKS answer may be cached (`Cache-Control: public, max-age`).
pub const JWKS_MAX_AGE_SECS: u64 = 300;

/// A public key as the JWKS shows it.
#[derive(Clone, PartialEq, Eq)]
struct PublicKey {
    kid: String,
    key: VerifyingKey,
}

/// The signing key and the key published beside it.
#[derive(Clone)]
pub struct SigningKeys {
    kid: String,
    signing: SigningKey,
    other: Option<PublicKey>,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// Why a key set was refused; the text says what to fix and never quotes a key.
#[derive(Debug, thiserror::Error)]
#[error("the verification keys: {0}")]
pub struct KeysError(String);

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: Option<String>,
    crv: Option<String>,
    kid: Option<String>,
    x: Option<String>,
    d: Option<String>,
}

impl SigningKeys {
    /// A fresh random key (`local-api`, tests): its `kid` is its RFC 7638 thumbprint.
    pub fn generate() -> Self {
        let signing = SigningKey::from_bytes(&crypto::new_key_seed());
        Self { kid: thumbprint(&signing.verifying_key()), signing, other: None }
    }

    /// A fresh random key named `kid`, for a new key set (`local-api --new-verification-key`).
    pub fn generate_named(kid: &str) -> Self {
        Self { kid: kid.to_owned(), ..Self::generate() }
    }

    /// The set as the secret holds it, private part included: what [`Self::from_jwks`] reads.
    pub fn private_jwks(&self) -> SecretText {
        let mut jwk = public_jwk(&PublicKey { kid: self.kid.clone(), key: self.signing.verifying_key() });
        jwk["d"] = json!(URL_SAFE_NO_PAD.encode(self.signing.to_bytes()));
        let keys: Vec<Value> = std::iter::once(jwk).chain(self.other.iter().map(public_jwk)).collect();
        SecretText::new(json!({ "keys": keys }).to_string())
    }

    /// Reads a JWK Set of one or two Ed25519 keys (`{"keys": [{"kty": "OKP", "crv": "Ed25519",
    /// "kid", "d", "x"}, …]}`): the first signs and must have `d`; `x`, where given, must be the
    /// public half of `d`.
    pub fn from_jwks(text: &str) -> Result<Self, KeysError> {
        // serde's message quotes the values it could not take (a private key, in a secret stored
        // twice encoded): only where and what kind of error is said.
        let set: RawKeySet = serde_json::from_str(text).map_err(|e| {
            KeysError(format!(
                "not a JWK Set ({{\"keys\": [...]}}): {:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let mut keys = set.keys.into_iter().enumerate();
        let Some((_, first)) = keys.next() else {
            return Err(KeysError("`keys` is empty: give the signing key first".into()));
        };
        let (kid, signing) = match parse_key(0, first)? {
            (kid, _, Some(signing)) => (kid, signing),
            _ => return Err(KeysError("`keys[0]` signs, so it needs its private part `d`".into())),
        };
        let other = match keys.next() {
            None => None,
            Some((i, raw)) => {
                let (other_kid, key, _) = parse_key(i, raw)?;
                if other_kid == kid {
                    return Err(KeysError(format!("`keys[{i}].kid` repeats `keys[0].kid`")));
                }
                Some(PublicKey { kid: other_kid, key })
            }
        };
        if keys.next().is_some() {
            return Err(KeysError("at most 2 keys: the signing key, then the previous or next".into()));
        }
        Ok(Self { kid, signing, other })
    }

    /// The `kid` of the signing key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK Set: the signing key first, then the other.
    pub fn public_jwks(&self) -> Value {
        let current = PublicKey { kid: self.kid.clone(), key: self.signing.verifying_key() };
        let keys: Vec<Value> = std::iter::once(&current).chain(self.other.as_ref()).map(public_jwk).collect();
        json!({ "keys": keys })
    }

    /// The compact JWS of `claims`.
    pub fn sign(&self, claims: &Value) -> VerificationToken {
        let header = json!({ "alg": ALGORITHM, "kid": self.kid, "typ": "JWT" });
        let signing_input = format!("{}.{}", b64(&header.to_string()), b64(&claims.to_string()));
        let signature = self.signing.sign(signing_input.as_bytes());
        VerificationToken::new(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes())))
    }
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text.as_bytes())
}

fn parse_key(i: usize, raw: RawKey) -> Result<(String, VerifyingKey, Option<SigningKey>), KeysError> {
    let at = format!("keys[{i}]");
    if raw.kty.as_deref() != Some("OKP") || raw.crv.as_deref() != Some("Ed25519") {
        return Err(KeysError(format!(
            "`{at}` must be an Ed25519 key: \"kty\": \"OKP\", \"crv\": \"Ed25519\""
        )));
    }
    let kid = raw.kid.filter(|kid| !kid.trim().is_empty() && kid.len() <= 128);
    let kid = kid.ok_or_else(|| KeysError(format!("`{at}.kid` must be a name of 1 to 128 characters")))?;
    let bytes = |field: &str, value: &str| -> Result<[u8; 32], KeysError> {
        let decoded = URL_SAFE_NO_PAD.decode(value.trim_end_matches('='));
        decoded
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| KeysError(format!("`{at}.{field}` must be 32 bytes in base64url (43 characters)")))
    };
    let signing = raw.d.as_deref().map(|d| bytes("d", d)).transpose()?.map(|d| SigningKey::from_bytes(&d));
    let public = match (raw.x.as_deref(), &signing) {
        (Some(x), signing) => {
            let key = VerifyingKey::from_bytes(&bytes("x", x)?)
                .map_err(|_| KeysError(format!("`{at}.x` is not an Ed25519 public key")))?;
            if signing.as_ref().is_some_and(|s| s.verifying_key() != key) {
                return Err(KeysError(format!("`{at}.x` is not the public half of its `d`")));
            }
            key
        }
        (None, Some(signing)) => signing.verifying_key(),
        (None, None) => return Err(KeysError(format!("`{at}` needs its public key `x`"))),
    };
    Ok((kid, public, signing))
}

fn public_jwk(key: &PublicKey) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.key.as_bytes()),
        "kid": key.kid,
        "alg": ALGORITHM,
        "use": "sig",
    })
}

/// RFC 7638's thumbprint of an Ed25519 key (RFC 8037 §2): SHA-256 of its required members in
/// lexicographic order, in base64url.
fn thumbprint(key: &VerifyingKey) -> String {
    let members =
        format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, URL_SAFE_NO_PAD.encode(key.as_bytes()));
    URL_SAFE_NO_PAD.encode(Sha256::digest(members.as_bytes()))
}

/// The keys an instance signs with and publishes: fixed (`local-api`, tests), or the Secrets
/// Manager secret's, read again every [`KEYS_REREAD_INTERVAL`]; a failed read keeps the keys it
/// has (and says so in the log), so a Secrets Manager outage never stops verifications.
pub struct KeyRing {
    state: Mutex<(Arc<SigningKeys>, Instant)>,
    source: Option<SecretsManagerSecret>,
    reread_every: Duration,
}

impl KeyRing {
    pub fn fixed(keys: SigningKeys) -> Self {
        Self {
            state: Mutex::new((Arc::new(keys), Instant::now())),
            source: None,
            reread_every: KEYS_REREAD_INTERVAL,
        }
    }

    /// The keys of the secret, read now: a cold start that cannot read them (or reads a set that
    /// is not valid) does not start.
    pub async fn from_secret(source: SecretsManagerSecret) -> Result<Self, KeysError> {
        let keys = read_keys(&source).await?;
        let state = Mutex::new((Arc::new(keys), Instant::now()));
        Ok(Self { state, source: Some(source), reread_every: KEYS_REREAD_INTERVAL })
    }

    /// The same, read again every `interval` instead of [`KEYS_REREAD_INTERVAL`] (tests).
    pub fn reread_every(self, interval: Duration) -> Self {
        Self { reread_every: interval, ..self }
    }

    /// The keys to use now, read again first when they are due.
    pub async fn current(&self) -> Arc<SigningKeys> {
        let (keys, read_at) = self.snapshot();
        let Some(source) = &self.source else { return keys };
        if read_at.elapsed() < self.reread_every {
            return keys;
        }
        // Whatever the read gives, the next one is an interval away: one slow read per interval.
        self.store(keys.clone());
        // Boxed: the SDK call's future is deep, and `/sms/token`'s would be too deep to lay out.
        let reread = Box::pin(tokio::time::timeout(READ_TIMEOUT, read_keys(source))).await;
        match reread.unwrap_or_else(|_| Err(KeysError(format!("reading {} timed out", source.arn)))) {
            Ok(fresh) => {
                if fresh.kid != keys.kid {
                    tracing::info!(event = "verification_key_rotated", kid = %fresh.kid, previous_kid = %keys.kid);
                }
                let fresh = Arc::new(fresh);
                self.store(fresh.clone());
                fresh
            }
            Err(err) => {
                tracing::warn!(event = "verification_keys_reread_failed", error = %err);
                keys
            }
        }
    }

    fn snapshot(&self) -> (Arc<SigningKeys>, Instant) {
        let state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        (state.0.clone(), state.1)
    }

    fn store(&self, keys: Arc<SigningKeys>) {
        *self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = (keys, Instant::now());
    }
}

/// What signs the verification results of one instance: its keys, its issuer, their lifetime.
pub struct ResultSigner {
    pub keys: KeyRing,
    /// `iss`: the configured `issuer` (or `API_BASE_URL`); `None`: the base URL the request came
    /// to, as API Gateway saw it.
    pub issuer: Option<String>,
    pub ttl: Duration,
}

/// What a signed result says: the verification as `/sms/token` completed it.
pub struct VerifiedNumber<'a> {
    pub client_id: &'a str,
    pub sub: &'a str,
    /// E.164: the number the SMS went to.
    pub phone_number: &'a str,
    pub test: bool,
    /// One per verification, the same in every token of it (a replay's too), so a backend that
    /// refuses a `jti` it has seen accepts each verification once.
    pub jti: &'a str,
}

impl ResultSigner {
    /// The token for `verified`, issued at `now` (Unix seconds); `base_url`
    /// is the API's URL the request came to (the issuer when none is configured).
    pub async fn sign(
        &self,
        verified: &VerifiedNumber<'_>,
        base_url: Option<&str>,
        now: u64,
    ) -> VerificationToken {
        let issuer = self.issuer.as_deref().or(base_url).unwrap_or(LOCAL_ISSUER);
        let mut claims = json!({
            "iss": issuer,
            "aud": verified.client_id,
            "sub": verified.sub,
            "phone_number": verified.phone_number,
            "phone_number_verified": true,
            "iat": now,
            "exp": now + self.ttl.as_secs(),
            "jti": verified.jti,
        });
        if verified.test {
            claims["test"] = json!(true);
        }
        self.keys.current().await.sign(&claims)
    }

    /// The public keys, as `GET /.well-known/jwks.json` answers them.
    pub async fn jwks(&self) -> Value {
        self.keys.current().await.public_jwks()
    }
}

async fn read_keys(source: &SecretsManagerSecret) -> Result<SigningKeys, KeysError> {
    let text =
        source.read_text().await.map_err(|cause| KeysError(format!("reading {}: {cause}", source.arn)))?;
    SigningKeys::from_jwks(text.expose())
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signature, Verifier};

    use super::*;

    fn private_jwk(keys: &SigningKeys, kid: &str) -> Value {
        json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid,
            "d": URL_SAFE_NO_PAD.encode(keys.signing.to_bytes()),
            "x": URL_SAFE_NO_PAD.encode(keys.signing.verifying_key().as_bytes()),
        })
    }

    #[test]
    fn a_token_verifies_with_the_published_key_and_not_after_a_change() {
        let keys = SigningKeys::generate();
        let token = keys.sign(&json!({ "sub": "s", "phone_number": "+447400123456" }));
        let parts: Vec<&str> = token.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({ "alg": "EdDSA", "kid": keys.kid(), "typ": "JWT" }));
        let jwk = &keys.public_jwks()["keys"][0];
        let x: [u8; 32] = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap().try_into().unwrap();
        let public = VerifyingKey::from_bytes(&x).unwrap();
        let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(public.verify(input.as_bytes(), &signature).is_ok());
        let forged = format!("{}.{}", parts[0], b64(r#"{"sub":"s","phone_number":"+15550100"}"#));
        assert!(public.verify(forged.as_bytes(), &signature).is_err());
    }

    #[test]
    fn a_key_set_is_read_with_its_previous_key_and_checked() {
        let (current, previous) = (SigningKeys::generate(), SigningKeys::generate());
        let mut old = private_jwk(&previous, "2026-11");
        old.as_object_mut().unwrap().remove("d");
        let set = json!({ "keys": [private_jwk(&current, "2026-12"), old] });
        let keys = SigningKeys::from_jwks(&set.to_string()).expect("a valid set");
        assert_eq!(keys.kid(), "2026-12");
        let published = keys.public_jwks();
        let kids: Vec<&str> =
            published["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids, ["2026-12", "2026-11"]);
        assert!(!published.to_string().contains("\"d\""), "no private part is published");

        let refused = |set: Value, says: &str| {
            let err = SigningKeys::from_jwks(&set.to_string()).expect_err("refused").to_string();
            assert!(err.contains(says), "{err}");
            let d = URL_SAFE_NO_PAD.encode(current.signing.to_bytes());
            assert!(!err.contains(&d), "the error quotes no key");
        };
        refused(json!({ "keys": [] }), "empty");
        refused(json!({ "keys": [old] }), "needs its private part");
        let mut wrong_x = private_jwk(&current, "k");
        wrong_x["x"] = private_jwk(&previous, "k")["x"].clone();
        refused(json!({ "keys": [wrong_x] }), "not the public half");
        refused(json!({ "keys": [private_jwk(&current, "k"), private_jwk(&previous, "k")] }), "repeats");
        let mut rsa = private_jwk(&current, "k");
        rsa["kty"] = json!("RSA");
        refused(json!({ "keys": [rsa] }), "Ed25519");
        let mut short = private_jwk(&current, "k");
        short["d"] = json!("AAAA");
        refused(json!({ "keys": [short] }), "32 bytes");
        refused(
            json!({ "keys": [private_jwk(&current, "a"), old, private_jwk(&previous, "c")] }),
            "at most 2",
        );
        refused(json!("not a set"), "JWK Set");
        // A set stored as a JSON string (encoded twice): the error names no part of it.
        let twice = json!(json!({ "keys": [private_jwk(&current, "k")] }).to_string());
        refused(twice, "JWK Set");
        refused(json!({ "keys": [json!(private_jwk(&current, "k")).to_string()] }), "JWK Set");
    }

    #[test]
    fn a_new_key_set_reads_back_as_it_signs() {
        let keys = SigningKeys::generate_named("2027-01");
        let read = SigningKeys::from_jwks(keys.private_jwks().expose()).expect("reads back");
        assert_eq!(read.kid(), "2027-01");
        assert_eq!(read.public_jwks(), keys.public_jwks());
    }

    #[test]
    fn the_generated_kid_is_the_rfc_7638_thumbprint() {
        // RFC 8037, appendix A.3: the thumbprint of the example key.
        let x: [u8; 32] = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap()
            .try_into()
            .unwrap();
        let key = VerifyingKey::from_bytes(&x).unwrap();
        assert_eq!(thumbprint(&key), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }
}
