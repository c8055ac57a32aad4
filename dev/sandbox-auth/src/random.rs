//! Identifiers the sandbox hands out: unguessable request ids and tokens, SMS codes,
//! and a stable subject per phone number.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// An opaque bearer string of `bytes` random bytes, base64url. 48 bytes for `auth_req_id`
/// keeps it long, like Keycloak's encrypted ids, so clients make no length assumptions.
pub(crate) fn opaque(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// A uniformly random 6-digit code, leading zeros kept.
pub(crate) fn sms_code() -> Result<String, getrandom::Error> {
    // Rejection sampling: the largest multiple of 1e6 below 2^32 avoids modulo bias.
    const LIMIT: u32 = u32::MAX - u32::MAX % 1_000_000;
    loop {
        let mut buf = [0u8; 4];
        getrandom::fill(&mut buf)?;
        let n = u32::from_le_bytes(buf);
        if n < LIMIT {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

/// A stable, UUID-shaped `sub` for a phone number (FNV-1a 128 over the digits): the same
/// number gets the same subject across requests and restarts, as a real user id would.
pub(crate) fn subject(phone_digits: &str) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    let h = phone_digits.bytes().fold(OFFSET, |h, b| (h ^ u128::from(b)).wrapping_mul(PRIME));
    let hex = format!("{h:032x}");
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let id = opaque(48).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, opaque(48).unwrap());
        let code = sms_code().unwrap();
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        let sub = subject("447700900123");
        assert_eq!(sub, subject("447700900123"));
        assert_ne!(sub, subject("447700900124"));
        assert_eq!(sub.len(), 36);
    }
}
