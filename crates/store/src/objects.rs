//! Attachments, stored content-addressed by SHA-256.
//!
//! A file is written to a temporary name, synced, renamed into place and
//! its directory synced before the caller commits the database row that
//! refers to it. A crash can leave a file nobody refers to (swept by
//! [`ObjectStore::sweep_orphans`]), never a row whose file is missing.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::{StoreError, StoreResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub sha256: String,
    pub size: u64,
}

#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Stores `bytes` durably and returns their address.
    async fn put(&self, bytes: Vec<u8>) -> StoreResult<ObjectRef>;
    async fn get(&self, sha256: &str) -> StoreResult<Vec<u8>>;
    async fn exists(&self, sha256: &str) -> StoreResult<bool>;
    /// Deletes objects not in `referenced` and older than `grace`; returns
    /// how many were removed.
    async fn sweep_orphans(
        &self,
        referenced: &HashSet<String>,
        grace: Duration,
    ) -> StoreResult<u64>;
}

/// Objects under a directory on local disk: `objects/ab/abcdef…`.
#[derive(Debug, Clone)]
pub struct LocalObjectStore {
    root: PathBuf,
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("object store: {e}"))
}

fn valid_hash(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl LocalObjectStore {
    pub fn open(root: impl Into<PathBuf>) -> StoreResult<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("tmp")).map_err(io)?;
        Ok(Self { root })
    }

    fn path_of(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2]).join(sha256)
    }

    fn put_blocking(root: &Path, bytes: &[u8]) -> StoreResult<ObjectRef> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let dir = root.join(&sha256[..2]);
        let dest = dir.join(&sha256);
        if dest.exists() {
            return Ok(ObjectRef {
                sha256,
                size: bytes.len() as u64,
            });
        }
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Backend(e.to_string()))?;
        let tmp = root
            .join("tmp")
            .join(format!("{sha256}.{}", hex::encode(nonce)));
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &dest).map_err(io)?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(ObjectRef {
            sha256,
            size: bytes.len() as u64,
        })
    }
}

#[async_trait]
impl ObjectStore for LocalObjectStore {
    async fn put(&self, bytes: Vec<u8>) -> StoreResult<ObjectRef> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || Self::put_blocking(&root, &bytes))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    async fn get(&self, sha256: &str) -> StoreResult<Vec<u8>> {
        if !valid_hash(sha256) {
            return Err(StoreError::NotFound);
        }
        match tokio::fs::read(self.path_of(sha256)).await {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound),
            Err(e) => Err(io(e)),
        }
    }

    async fn exists(&self, sha256: &str) -> StoreResult<bool> {
        Ok(valid_hash(sha256)
            && tokio::fs::try_exists(self.path_of(sha256))
                .await
                .map_err(io)?)
    }

    async fn sweep_orphans(
        &self,
        referenced: &HashSet<String>,
        grace: Duration,
    ) -> StoreResult<u64> {
        let root = self.root.clone();
        let referenced = referenced.clone();
        tokio::task::spawn_blocking(move || -> StoreResult<u64> {
            let now = SystemTime::now();
            let old_enough = |p: &Path| {
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age >= grace)
            };
            let mut removed = 0;
            for shard in std::fs::read_dir(&root).map_err(io)? {
                let shard = shard.map_err(io)?.path();
                if !shard.is_dir() {
                    continue;
                }
                let is_tmp = shard.file_name().is_some_and(|n| n == "tmp");
                for f in std::fs::read_dir(&shard).map_err(io)? {
                    let p = f.map_err(io)?.path();
                    let name = p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default()
                        .to_string();
                    let orphan = is_tmp || !referenced.contains(&name);
                    if orphan && old_enough(&p) {
                        std::fs::remove_file(&p).map_err(io)?;
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}
