//! The installation's secret key and the MACs made with it.
//!
//! One random key per installation, made at first use and kept in the
//! database (so every node shares it, and a restart keeps it). Each use
//! has its own purpose label, so that a MAC made for one thing is never
//! accepted for another: prefilled form data, files kept between attempts
//! of a form, browsers an account signed in from.

use sha2::{Digest, Sha256};

use crate::App;
use crate::error::{CommandError, CommandResult};

/// The setting that holds the key (named for its first use).
pub const SERVER_KEY_META: &str = "portal.prefill_key";

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Compares two byte strings in time that does not depend on where they
/// differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The installation's secret key.
#[derive(Clone)]
pub struct ServerKey(Vec<u8>);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(…)")
    }
}

impl ServerKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The MAC (hex) of `parts` for `purpose`; each part is length-prefixed
    /// so that no two different lists read alike.
    pub fn mac(&self, purpose: &str, parts: &[&str]) -> String {
        let mut msg = Vec::new();
        for p in std::iter::once(purpose).chain(parts.iter().copied()) {
            msg.extend_from_slice(&(p.len() as u64).to_be_bytes());
            msg.extend_from_slice(p.as_bytes());
        }
        hex::encode(hmac_sha256(&self.0, &msg))
    }

    /// Whether `mac` is the MAC of `parts` for `purpose`.
    pub fn verify(&self, purpose: &str, parts: &[&str], mac: &str) -> bool {
        constant_time_eq(self.mac(purpose, parts).as_bytes(), mac.as_bytes())
    }

    /// The key stored in the database, made there first if it is missing
    /// (by whichever node is first: the others read what it stored).
    pub async fn load(st: &App) -> CommandResult<Self> {
        if let Some(k) = st.store.meta(SERVER_KEY_META).await? {
            return hex::decode(k.trim())
                .map(Self)
                .map_err(CommandError::internal);
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(CommandError::internal)?;
        let entry = motcua_domain::audit::AuditEntry::system(
            st.clock.now(),
            "portal.server_key.create",
            &serde_json::json!({ "key": SERVER_KEY_META }),
        );
        st.store
            .set_meta_if(SERVER_KEY_META, None, &hex::encode(key), entry)
            .await?;
        let stored = st
            .store
            .meta(SERVER_KEY_META)
            .await?
            .ok_or_else(|| CommandError::internal("server key not stored"))?;
        hex::decode(stored.trim())
            .map(Self)
            .map_err(CommandError::internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_bound_to_their_purpose_and_parts() {
        let k = ServerKey::new(vec![1; 32]);
        let m = k.mac("kept", &["a", "bc"]);
        assert!(k.verify("kept", &["a", "bc"], &m));
        assert!(!k.verify("kept", &["ab", "c"], &m));
        assert!(!k.verify("prefill", &["a", "bc"], &m));
        assert!(!ServerKey::new(vec![2; 32]).verify("kept", &["a", "bc"], &m));
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_case_6_long_key() {
        let key = [0xaau8; 131];
        let mac = hmac_sha256(
            &key,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
