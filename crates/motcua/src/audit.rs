//! The audit chain's trust anchors: the key that signs its head, the copy
//! of the newest signed head kept outside the database, and `motcua audit
//! verify`.
//!
//! Every transaction that appends to the chain also writes a signed
//! checkpoint of the new head in the database (see
//! `motcua_store::sql::AuditSigner`). Deleting the newest records leaves
//! that checkpoint pointing past the end; deleting the checkpoint as well,
//! or restoring an older copy of the whole database, is caught by the copy
//! of the checkpoint that `serve` writes to a file beside the database
//! every second and when it stops. Each dossier names the record that set
//! its current status, so a status changed in the database directly is
//! named too.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ed25519_dalek::SigningKey;
use motcua_domain::audit::Checkpoint;
use motcua_store::Store;
use serde::{Deserialize, Serialize};

use crate::Config;

/// The `[audit]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditConfig {
    /// The Ed25519 key (64 hex digits) that signs the chain's head; default
    /// `<data_dir>/audit-signing.key`, made at first start. Nodes of one
    /// installation share the same key file.
    pub key_file: Option<PathBuf>,
    /// Where the newest signed head is copied; default
    /// `<data_dir>/audit-checkpoint.json`. Keep it (or a copy of it)
    /// apart from database backups.
    pub checkpoint_file: Option<PathBuf>,
}

impl AuditConfig {
    pub fn key_path(&self, data_dir: &Path) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("audit-signing.key"))
    }

    pub fn checkpoint_path(&self, data_dir: &Path) -> PathBuf {
        self.checkpoint_file
            .clone()
            .unwrap_or_else(|| data_dir.join("audit-checkpoint.json"))
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename:
/// the file is whole, old or new, after any crash.
fn write_atomically(path: &Path, bytes: &[u8], private: bool) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("audit");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn read_key(path: &Path) -> anyhow::Result<Option<SigningKey>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut seed = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut seed)
                .with_context(|| format!("{} is not an audit signing key", path.display()))?;
            Ok(Some(SigningKey::from_bytes(&seed)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The key of `cfg`, made on first use. Nodes starting at once on one data
/// directory agree on one key: a new key is written beside the file and
/// linked into place only if no other node did so first.
pub fn load_or_create_key(cfg: &Config) -> anyhow::Result<SigningKey> {
    let path = cfg.audit.key_path(&cfg.data_dir);
    if let Some(key) = read_key(&path)? {
        return Ok(key);
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
    let candidate = path.with_extension(format!("new-{}", hex::encode(tag)));
    write_atomically(&candidate, hex::encode(seed).as_bytes(), true)?;
    let linked = std::fs::hard_link(&candidate, &path);
    let _ = std::fs::remove_file(&candidate);
    match linked {
        Ok(()) => Ok(SigningKey::from_bytes(&seed)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key(&path)?.with_context(|| format!("{} vanished while starting", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("writing {}", path.display())),
    }
}

/// The checkpoint copied outside the database, if there is one.
pub fn read_checkpoint_file(cfg: &Config) -> anyhow::Result<Option<Checkpoint>> {
    let path = cfg.audit.checkpoint_path(&cfg.data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not an audit checkpoint", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Copies the database's newest checkpoint to the file when it is newer
/// than the file's; returns whether it wrote. A file whose checkpoint the
/// chain does not contain (an older copy of the database restored, or its
/// newest records deleted, and the chain grown again since) is evidence:
/// it is left as it is, and that is an error.
pub async fn copy_checkpoint(store: &dyn Store, cfg: &Config) -> anyhow::Result<bool> {
    let Some(cp) = store.audit_checkpoint().await? else {
        return Ok(false);
    };
    let path = cfg.audit.checkpoint_path(&cfg.data_dir);
    let current = read_checkpoint_file(cfg).ok().flatten();
    if let Some(c) = &current {
        if c.seq >= cp.seq {
            return Ok(false);
        }
        let hash_at = store.audit_record(c.seq).await?.map(|r| r.hash);
        if hash_at.as_deref() != Some(c.hash.as_str()) {
            anyhow::bail!(
                "{} holds the checkpoint of record {}, which is not in the audit chain: not replaced (run motcua audit verify)",
                path.display(),
                c.seq
            );
        }
    }
    let json = serde_json::to_vec_pretty(&cp)?;
    tokio::task::spawn_blocking(move || write_atomically(&path, &json, false)).await??;
    Ok(true)
}

/// At start: a chain without a checkpoint (an installation of an earlier
/// release) has its head signed now — but only when no checkpoint was ever
/// copied out either, so that a deleted checkpoint is reported, not
/// silently signed again.
pub async fn adopt_head(store: &dyn Store, cfg: &Config) -> anyhow::Result<()> {
    if store.audit_checkpoint().await?.is_some() || read_checkpoint_file(cfg)?.is_some() {
        return Ok(());
    }
    store.sign_audit_head().await?;
    Ok(())
}

/// Copies the checkpoint out every second while the chain grows.
pub fn spawn_checkpoint_copier(store: Arc<dyn Store>, cfg: Config) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Err(e) = copy_checkpoint(store.as_ref(), &cfg).await {
                tracing::warn!(error = %e, "cannot copy the audit checkpoint");
            }
        }
    });
}

/// What `motcua audit verify` found.
#[derive(Debug)]
pub enum Verdict {
    Intact {
        records: u64,
        /// The newest checkpoint that anchors the chain, if any.
        anchored_at: Option<i64>,
    },
    /// The first problem: the record (or dossier) it is about, and why.
    Broken { at: String, reason: String },
}

fn broken(at: String, reason: impl Into<String>) -> Verdict {
    Verdict::Broken {
        at,
        reason: reason.into(),
    }
}

/// Checks a signed checkpoint against the chain as found.
async fn check_anchor(
    store: &dyn Store,
    cp: &Checkpoint,
    key: &ed25519_dalek::VerifyingKey,
    head: Option<(i64, &str)>,
    what: &str,
) -> anyhow::Result<Option<Verdict>> {
    if let Err(why) = cp.verify(key) {
        return Ok(Some(broken(
            format!("the {what}"),
            format!("{why}; nothing it says can be trusted"),
        )));
    }
    let hash_at = store.audit_record(cp.seq).await?.map(|r| r.hash);
    Ok(cp
        .check_against(head, hash_at.as_deref())
        .err()
        .map(|e| broken(format!("record {}", e.seq), e.reason)))
}

/// Verifies the whole chain, its anchors, and every dossier's status.
pub async fn verify(store: &dyn Store, cfg: &Config) -> anyhow::Result<Verdict> {
    let records = match crate::verify_audit(store).await? {
        Ok(n) => n,
        Err(e) => return Ok(broken(format!("record {}", e.seq), e.reason)),
    };
    let head = store.audit_head().await?;
    let head_ref = head.as_ref().map(|(s, h)| (*s, h.as_str()));
    let key = load_or_create_key(cfg)?.verifying_key();
    let in_db = store.audit_checkpoint().await?;
    let outside = read_checkpoint_file(cfg)?;
    if in_db.is_none() && head.is_some() && outside.is_some() {
        return Ok(broken(
            "the chain's head".into(),
            "its signed checkpoint is missing from the database (deleted)",
        ));
    }
    for (cp, what) in [
        (&in_db, "checkpoint in the database"),
        (&outside, "checkpoint copied outside the database"),
    ] {
        if let Some(cp) = cp
            && let Some(bad) = check_anchor(store, cp, &key, head_ref, what).await?
        {
            return Ok(bad);
        }
    }
    if let Some(p) = store.dossier_state_problems(1).await?.into_iter().next() {
        return Ok(broken(format!("dossier {}", p.code), p.reason));
    }
    let anchored_at = [&in_db, &outside]
        .into_iter()
        .flatten()
        .map(|c| c.seq)
        .max();
    Ok(Verdict::Intact {
        records,
        anchored_at,
    })
}
