//! Tamper-evident audit chain (nhật ký kiểm toán).
//!
//! Every state change and every access by staff to a dossier's personal
//! data appends one [`AuditRecord`]. Each record carries the hash of the one
//! before it, so altering, deleting or reordering any record breaks every
//! hash after it; [`verify_chain`] names the first broken record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What is recorded, before it is linked into the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// User name of the actor, or `system`.
    pub actor: String,
    pub actor_role: String,
    pub agency_code: Option<String>,
    /// What happened: `dossier.accept`, `dossier.view_personal_data`, `user.create` …
    pub action: String,
    pub dossier_code: Option<String>,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub note: Option<String>,
    /// SHA-256 (hex) of the action's payload (submitted fields, note, dates).
    pub payload_hash: String,
}

impl AuditEntry {
    /// An entry by `actor` acting as `role`, with the hash of `payload`;
    /// agency, dossier, statuses and note are filled in by the caller.
    pub fn new(
        at: DateTime<Utc>,
        actor: &str,
        role: &str,
        action: &str,
        payload: &serde_json::Value,
    ) -> Self {
        Self {
            at,
            actor: actor.to_string(),
            actor_role: role.to_string(),
            agency_code: None,
            action: action.to_string(),
            dossier_code: None,
            from_status: None,
            to_status: None,
            note: None,
            payload_hash: payload_hash(payload),
        }
    }

    /// An entry of the system itself (imports, start-up, command line).
    pub fn system(at: DateTime<Utc>, action: &str, payload: &serde_json::Value) -> Self {
        Self::new(at, "system", "system", action, payload)
    }
}

/// A record as stored: the entry, its position and its links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// SHA-256 of arbitrary bytes, as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hash of a payload value (canonical JSON text).
pub fn payload_hash(payload: &serde_json::Value) -> String {
    sha256_hex(payload.to_string().as_bytes())
}

/// The hash of a record: SHA-256 over the previous hash, the sequence number
/// and every field of the entry in a fixed order, each length-prefixed so
/// that no two different records serialise alike.
pub fn record_hash(seq: i64, prev_hash: &str, entry: &AuditEntry) -> String {
    let mut h = Sha256::new();
    let mut put = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    put(prev_hash);
    put(&seq.to_string());
    put(&entry.at.timestamp_micros().to_string());
    put(&entry.actor);
    put(&entry.actor_role);
    put(entry.agency_code.as_deref().unwrap_or("\u{0}"));
    put(&entry.action);
    put(entry.dossier_code.as_deref().unwrap_or("\u{0}"));
    put(entry.from_status.as_deref().unwrap_or("\u{0}"));
    put(entry.to_status.as_deref().unwrap_or("\u{0}"));
    put(entry.note.as_deref().unwrap_or("\u{0}"));
    put(&entry.payload_hash);
    hex::encode(h.finalize())
}

/// Links `entry` after the record with sequence `prev_seq` and hash `prev_hash`.
pub fn link(prev: Option<(i64, &str)>, entry: AuditEntry) -> AuditRecord {
    let (seq, prev_hash) = match prev {
        Some((s, h)) => (s + 1, h.to_string()),
        None => (1, GENESIS_HASH.to_string()),
    };
    let hash = record_hash(seq, &prev_hash, &entry);
    AuditRecord {
        seq,
        entry,
        prev_hash,
        hash,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit record {seq} is broken: {reason}")]
pub struct ChainBroken {
    pub seq: i64,
    pub reason: String,
}

/// Incremental verifier: feed records in sequence order.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    last: Option<(i64, String)>,
    count: u64,
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, rec: &AuditRecord) -> Result<(), ChainBroken> {
        let (expected_seq, expected_prev) = match &self.last {
            Some((s, h)) => (s + 1, h.as_str()),
            None => (1, GENESIS_HASH),
        };
        if rec.seq != expected_seq {
            return Err(ChainBroken {
                seq: rec.seq,
                reason: format!(
                    "expected record {expected_seq} here: a record is missing or out of order"
                ),
            });
        }
        if rec.prev_hash != expected_prev {
            return Err(ChainBroken {
                seq: rec.seq,
                reason: "its link to the previous record does not match".into(),
            });
        }
        if record_hash(rec.seq, &rec.prev_hash, &rec.entry) != rec.hash {
            return Err(ChainBroken {
                seq: rec.seq,
                reason: "its content does not match its hash (altered)".into(),
            });
        }
        self.last = Some((rec.seq, rec.hash.clone()));
        self.count += 1;
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Verifies a whole chain in order; returns the number of records.
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
) -> Result<u64, ChainBroken> {
    let mut v = ChainVerifier::new();
    for r in records {
        v.push(r)?;
    }
    Ok(v.count())
}

/// The signed head of the chain: "the chain had `seq` records, the last
/// with hash `hash`, at `at`". Written with every append (in its
/// transaction) and copied outside the database, so that deleting the
/// newest records, or restoring an older copy of the database, is seen by
/// [`Checkpoint::check_against`] even though the remaining chain links up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub at: DateTime<Utc>,
    /// The signer's public key (Ed25519, hex).
    pub key: String,
    /// Ed25519 signature (hex) over [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// The signed bytes.
    pub fn message(seq: i64, hash: &str, at: DateTime<Utc>) -> Vec<u8> {
        format!(
            "motcua audit checkpoint\n{seq}\n{hash}\n{}",
            at.timestamp_micros()
        )
        .into_bytes()
    }

    pub fn sign(key: &ed25519_dalek::SigningKey, seq: i64, hash: &str, at: DateTime<Utc>) -> Self {
        use ed25519_dalek::Signer;
        let sig = key.sign(&Self::message(seq, hash, at));
        Self {
            seq,
            hash: hash.to_string(),
            at,
            key: hex::encode(key.verifying_key().to_bytes()),
            signature: hex::encode(sig.to_bytes()),
        }
    }

    /// Whether the signature is `trusted`'s over this checkpoint.
    pub fn verify(&self, trusted: &ed25519_dalek::VerifyingKey) -> Result<(), String> {
        if self.key != hex::encode(trusted.to_bytes()) {
            return Err(format!(
                "it is signed with key {}…, not with this installation's key {}…",
                self.key.get(..16).unwrap_or(&self.key),
                hex::encode(&trusted.to_bytes()[..8])
            ));
        }
        let sig = hex::decode(&self.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| ed25519_dalek::Signature::from_bytes(&b))
            .ok_or("its signature is not a signature")?;
        trusted
            .verify_strict(&Self::message(self.seq, &self.hash, self.at), &sig)
            .map_err(|_| "its signature does not match (altered)".to_string())
    }

    /// Compares a verified checkpoint with the chain as found: `head` is the
    /// last record's (seq, hash), `hash_at` the hash of the record at the
    /// checkpoint's seq, if it exists.
    pub fn check_against(
        &self,
        head: Option<(i64, &str)>,
        hash_at: Option<&str>,
    ) -> Result<(), ChainBroken> {
        let last = head.map_or(0, |(s, _)| s);
        if last < self.seq {
            return Err(ChainBroken {
                seq: last + 1,
                reason: format!(
                    "records {} to {} are missing: the checkpoint of {} says the chain had {} records (newest records deleted, or an older copy of the database restored)",
                    last + 1,
                    self.seq,
                    self.at.to_rfc3339(),
                    self.seq
                ),
            });
        }
        if hash_at != Some(self.hash.as_str()) {
            return Err(ChainBroken {
                seq: self.seq,
                reason: format!(
                    "it is not the record the checkpoint of {} signed (the chain was rewritten)",
                    self.at.to_rfc3339()
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u32) -> AuditEntry {
        AuditEntry {
            at: DateTime::from_timestamp(1_700_000_000 + i64::from(n), 0).unwrap_or_default(),
            actor: "officer".into(),
            actor_role: "officer".into(),
            agency_code: Some("UB00073".into()),
            action: "dossier.accept".into(),
            dossier_code: Some(format!("UB00073-251122-{n:04}")),
            from_status: Some("newly_registered".into()),
            to_status: Some("accepted".into()),
            note: None,
            payload_hash: payload_hash(&serde_json::json!({ "n": n })),
        }
    }

    fn chain(n: u32) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 1..=n {
            let prev = out.last().map(|r| (r.seq, r.hash.as_str()));
            let rec = link(prev, entry(i));
            out.push(rec);
        }
        out
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify_chain(&chain(5)), Ok(5));
        assert_eq!(verify_chain(&[]), Ok(0));
    }

    #[test]
    fn altered_deleted_and_reordered_records_are_named() {
        let mut c = chain(5);
        c[2].entry.note = Some("changed".into());
        assert_eq!(verify_chain(&c).map_err(|e| e.seq), Err(3));

        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify_chain(&c).map_err(|e| e.seq), Err(3));

        let mut c = chain(5);
        c.swap(1, 2);
        assert!(verify_chain(&c).is_err());

        // Re-hashing an altered record alone is not enough: the next link breaks.
        let mut c = chain(5);
        c[1].entry.actor = "mallory".into();
        c[1].hash = record_hash(c[1].seq, &c[1].prev_hash, &c[1].entry);
        assert_eq!(verify_chain(&c).map_err(|e| e.seq), Err(3));
    }

    #[test]
    fn a_checkpoint_names_truncation_and_rewriting() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let c = chain(10);
        let at = DateTime::from_timestamp(1_700_000_100, 0).unwrap_or_default();
        let cp = Checkpoint::sign(&key, 10, &c[9].hash, at);
        assert_eq!(cp.verify(&key.verifying_key()), Ok(()));
        assert_eq!(
            cp.check_against(Some((10, &c[9].hash)), Some(&c[9].hash)),
            Ok(())
        );
        // Three newest records deleted: the first missing one is named.
        let e = cp
            .check_against(Some((7, &c[6].hash)), None)
            .expect_err("truncated");
        assert_eq!(e.seq, 8);
        assert!(e.reason.contains("8 to 10"), "{}", e.reason);
        // Everything deleted.
        assert_eq!(cp.check_against(None, None).map_err(|e| e.seq), Err(1));
        // A rewritten record at the checkpoint's place.
        assert_eq!(
            cp.check_against(Some((12, "x")), Some("other"))
                .map_err(|e| e.seq),
            Err(10)
        );
        // A forged or altered checkpoint.
        let mut forged = cp.clone();
        forged.seq = 7;
        assert!(forged.verify(&key.verifying_key()).is_err());
        let other = ed25519_dalek::SigningKey::from_bytes(&[8u8; 32]);
        assert!(cp.verify(&other.verifying_key()).is_err());
    }
}
