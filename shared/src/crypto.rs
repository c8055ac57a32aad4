//! Every secret-handling primitive in one place: random values, digests, constant-time
//! comparison, and sealing a value so that only the holder of the `auth_req_id` can open it.
//!
//! The state store never sees a raw `auth_req_id`, nonce or session token: it sees their SHA-256
//! digests. A leaked table therefore gives an attacker nothing to replay.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chacha20poly1305::{
    ChaCha20Poly1305, Key, Nonce,
    aead::{Aead, KeyInit},
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `n` bytes from the operating system's CSPRNG.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator failing is unrecoverable (no safe fallback exists for secrets).
    getrandom::fill(&mut bytes).expect("operating system random generator failed");
    bytes
}

/// 32 random bytes for a private key (see [`crate::signed_result`]).
pub fn new_key_seed() -> [u8; 32] {
    random_bytes::<32>()
}

/// A fresh random UUIDv4, as the `nonce` handed to the client.
pub fn new_nonce() -> String {
    uuid::Builder::from_random_bytes(random_bytes::<16>()).into_uuid().to_string()
}

/// A 256-bit random bearer token, URL-safe base64 (43 characters).
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Whether `value` has the shape of a [`new_token`] (so it is worth looking up).
pub fn is_token(value: &str) -> bool {
    value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Hex SHA-256 of `value` within a domain, so digests of different kinds never collide.
pub fn digest(domain: &str, value: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(domain.as_bytes());
    hasher.update([0u8]);
    hasher.update(value.as_bytes());
    hex::encode(hasher.finalize())
}

/// A short key for a caller's network (see [`crate::limits::ip_bucket`]) that logs can group by.
///
/// Keyed with the client secret: a plain hash of an IPv4 address is reversed by hashing all 2³²
/// of them, this one cannot be without the secret. Stable across instances and deployments that
/// share the secret, so a pumping source stays one key.
pub fn source_key(client_secret: &crate::secret::ClientSecret, ip_bucket: &str) -> String {
    digest(&format!("source\0{}", client_secret.expose()), ip_bucket)[..16].to_owned()
}

/// Compares two digests (or any two secrets) without leaking where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Encrypts `plaintext` with a key derived from `auth_req_id`.
///
/// Used to keep an upstream access token across a retried `/sms/token`: the table holds only the
/// sealed form, and only a caller who presents the `auth_req_id` again can open it.
pub fn seal(auth_req_id: &str, plaintext: &str) -> String {
    seal_with(&cipher_for(b"sms-verify/seal/v1", &[auth_req_id]), plaintext)
}

/// Opens what [`seal`] produced; `None` if it was sealed under another `auth_req_id` or altered.
pub fn open(auth_req_id: &str, sealed: &str) -> Option<String> {
    open_with(&cipher_for(b"sms-verify/seal/v1", &[auth_req_id]), sealed)
}

/// Encrypts a completed verification's session token under what only the caller who completed
/// it holds: the `auth_req_id`, the nonce and the right code (none of them stored in clear), so
/// the same `/sms/token` request retried after a lost answer gets the same session, and nobody
/// else can, not even with the table.
pub fn seal_completion(auth_req_id: &str, nonce: &str, code: &str, session_token: &str) -> String {
    seal_with(&cipher_for(b"sms-verify/completion/v1", &[auth_req_id, nonce, code]), session_token)
}

/// Opens what [`seal_completion`] produced; `None` for any other request (another code, nonce
/// or `auth_req_id`) or an altered value.
pub fn open_completion(auth_req_id: &str, nonce: &str, code: &str, sealed: &str) -> Option<String> {
    open_with(&cipher_for(b"sms-verify/completion/v1", &[auth_req_id, nonce, code]), sealed)
}

fn seal_with(cipher: &ChaCha20Poly1305, plaintext: &str) -> String {
    let nonce_bytes = random_bytes::<12>();
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce_bytes), plaintext.as_bytes())
        .expect("ChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&sealed);
    URL_SAFE_NO_PAD.encode(out)
}

fn open_with(cipher: &ChaCha20Poly1305, sealed: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if bytes.len() < 12 {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(12);
    let plain = cipher.decrypt(Nonce::from_slice(nonce), ciphertext).ok()?;
    String::from_utf8(plain).ok()
}

/// A key from SHA-256 over the domain and the parts, each ended by a NUL (none of the parts can
/// hold one: they are checked for control characters on the way in).
fn cipher_for(domain: &[u8], parts: &[&str]) -> ChaCha20Poly1305 {
    let mut hasher = Sha256::new().chain_update(domain).chain_update([0u8]);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update([0u8]);
        }
        hasher.update(part.as_bytes());
    }
    ChaCha20Poly1305::new(Key::from_slice(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_distinct_v4_uuids() {
        let a = new_nonce();
        let b = new_nonce();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }

    #[test]
    fn tokens_carry_256_bits() {
        let token = new_token();
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap().len(), 32);
        assert_ne!(token, new_token());
    }

    #[test]
    fn digests_are_domain_separated() {
        assert_eq!(digest("a", "x"), digest("a", "x"));
        assert_ne!(digest("a", "x"), digest("b", "x"));
        assert_eq!(digest("a", "x").len(), 64);
    }

    #[test]
    fn sealed_values_open_only_with_their_auth_req_id() {
        let sealed = seal("req-1", "access-token");
        assert!(!sealed.contains("access-token"));
        assert_eq!(open("req-1", &sealed).as_deref(), Some("access-token"));
        assert_eq!(open("req-2", &sealed), None);
        assert_eq!(open("req-1", "garbage"), None);
    }

    #[test]
    fn a_completion_opens_only_for_the_same_request() {
        let sealed = seal_completion("req-1", "nonce-1", "123456", "session-token");
        assert!(!sealed.contains("session-token"));
        assert_eq!(open_completion("req-1", "nonce-1", "123456", &sealed).as_deref(), Some("session-token"));
        for (req, nonce, code) in
            [("req-2", "nonce-1", "123456"), ("req-1", "nonce-2", "123456"), ("req-1", "nonce-1", "123457")]
        {
            assert_eq!(open_completion(req, nonce, code, &sealed), None, "{req} {nonce} {code}");
        }
        assert_eq!(open("req-1", &sealed), None, "the two kinds of seal never open each other");
    }

    #[test]
    fn constant_time_eq_compares_content() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
