//! Attachments in an S3-compatible bucket, content-addressed like on local
//! disk: `<prefix>/ab/abcdef…` where `abcdef…` is the SHA-256 of the bytes.
//!
//! [`ObjectStore::put`] returns only once S3 has acknowledged the write (a
//! single `PUT` whose payload hash is signed, so the server refuses a body
//! that arrived damaged); the caller commits the database row after that.
//! As on local disk, a crash can leave an object nobody refers to (swept by
//! [`ObjectStore::sweep_orphans`]), never a row whose object is missing.
//! [`ObjectStore::get`] checks the bytes it read against their address: a
//! corrupted object is an error, never served silently.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{
    Error as S3Error, ObjectStore as _, ObjectStoreExt as _, PutPayload, RetryConfig,
};
use sha2::{Digest, Sha256};

use crate::objects::{ObjectRef, ObjectStore};
use crate::{StoreError, StoreResult};

/// An existing object older than this is written again by `put`, which
/// renews its modification time: an old unreferenced object that a new
/// dossier is about to refer to must not be swept between the upload and
/// the commit (the sweep's grace is an hour).
const REFRESH_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Where the bucket is and how to sign in to it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: String,
    /// Endpoint of an S3-compatible service (MinIO, Ceph, a provider's
    /// region endpoint); `None` for AWS itself.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow a plain `http://` endpoint (a service on the same host or
    /// private network); refused otherwise.
    pub allow_http: bool,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Objects in an S3-compatible bucket.
#[derive(Clone)]
pub struct S3ObjectStore {
    inner: Arc<AmazonS3>,
    bucket: String,
    /// Key prefix; empty for the bucket's root.
    prefix: Path,
}

impl fmt::Debug for S3ObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3ObjectStore")
            .field("url", &self.to_string())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for S3ObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.as_ref().is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// A content address: 64 lowercase hexadecimal digits.
fn valid_hash(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Splits `s3://bucket/prefix` into the bucket and the key prefix.
fn parse_url(url: &str) -> StoreResult<(String, Path)> {
    let invalid = |why: &str| StoreError::Invalid(format!("object store URL '{url}': {why}"));
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| invalid("must start with s3://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid("names no bucket"));
    }
    if bucket.contains(['@', ':', '?', '#']) {
        return Err(invalid(
            "is s3://bucket/prefix, without credentials or options",
        ));
    }
    let prefix = prefix.trim_matches('/');
    let prefix = if prefix.is_empty() {
        Path::default()
    } else {
        Path::parse(prefix).map_err(|e| invalid(&format!("bad prefix: {e}")))?
    };
    Ok((bucket.to_string(), prefix))
}

impl S3ObjectStore {
    /// Configures the client; nothing is sent yet (see [`Self::check`]).
    ///
    /// Settings not given fall back to the standard `AWS_*` environment
    /// variables (e.g. `AWS_REGION`, `AWS_SESSION_TOKEN`), and credentials
    /// to the instance's role when there are none at all.
    pub fn open(options: &S3Options) -> StoreResult<Self> {
        let (bucket, prefix) = parse_url(&options.url)?;
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_retry(retry);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &options.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &options.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if options.allow_http {
            builder = builder.with_allow_http(true);
        }
        // Instance-role credentials exist only on AWS: another S3 service
        // needs keys (and asking the metadata service would only time out).
        let has_key = |k| builder.get_config_value(&k).is_some();
        if has_key(AmazonS3ConfigKey::Endpoint)
            && !has_key(AmazonS3ConfigKey::AccessKeyId)
            && !has_key(AmazonS3ConfigKey::SecretAccessKey)
        {
            return Err(StoreError::Invalid(format!(
                "object store {}: an S3-compatible endpoint needs \
                 access_key_id and secret_access_key",
                options.url
            )));
        }
        let inner = builder
            .build()
            .map_err(|e| StoreError::Invalid(format!("object store {}: {e}", options.url)))?;
        Ok(Self {
            inner: Arc::new(inner),
            bucket,
            prefix,
        })
    }

    /// Lists the top of the prefix: fails with a clear message when the
    /// endpoint cannot be reached, the bucket does not exist or the
    /// credentials are refused.
    pub async fn check(&self) -> StoreResult<()> {
        self.inner
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map(|_| ())
            .map_err(|e| self.error("cannot list the bucket", e))
    }

    fn path_of(&self, sha256: &str) -> Path {
        self.prefix.clone().join(&sha256[..2]).join(sha256)
    }

    fn error(&self, what: &str, e: S3Error) -> StoreError {
        StoreError::Backend(format!("object store {self}: {what}: {e}"))
    }
}

/// SHA-256 of `bytes` off the async threads (attachments run to megabytes).
async fn digest<B: AsRef<[u8]> + Send + 'static>(bytes: B) -> StoreResult<(String, B)> {
    tokio::task::spawn_blocking(move || (hex::encode(Sha256::digest(bytes.as_ref())), bytes))
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(&self, bytes: Vec<u8>) -> StoreResult<ObjectRef> {
        let (sha256, bytes) = digest(bytes).await?;
        let size = bytes.len() as u64;
        let path = self.path_of(&sha256);
        match self.inner.head(&path).await {
            Ok(meta) if meta.size == size && Utc::now() - meta.last_modified < REFRESH_AFTER => {
                return Ok(ObjectRef { sha256, size });
            }
            Ok(meta) if meta.size != size => {
                tracing::warn!(object = %sha256, stored = meta.size, expected = size,
                    "stored attachment has the wrong size; writing it again");
            }
            Ok(_) | Err(S3Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error(&format!("cannot look up {sha256}"), e)),
        }
        self.inner
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| self.error(&format!("cannot write {sha256}"), e))?;
        Ok(ObjectRef { sha256, size })
    }

    async fn get(&self, sha256: &str) -> StoreResult<Vec<u8>> {
        if !valid_hash(sha256) {
            return Err(StoreError::NotFound);
        }
        let read = match self.inner.get(&self.path_of(sha256)).await {
            Ok(r) => r,
            Err(S3Error::NotFound { .. }) => return Err(StoreError::NotFound),
            Err(e) => return Err(self.error(&format!("cannot read {sha256}"), e)),
        };
        let bytes = read
            .bytes()
            .await
            .map_err(|e| self.error(&format!("cannot read {sha256}"), e))?;
        let (actual, bytes) = digest(bytes).await?;
        if actual != sha256 {
            tracing::error!(object = %sha256, actual = %actual, "corrupted attachment");
            return Err(StoreError::Backend(format!(
                "object store {self}: attachment {sha256} is corrupted: \
                 its content does not match its SHA-256 address"
            )));
        }
        Ok(bytes.into())
    }

    async fn exists(&self, sha256: &str) -> StoreResult<bool> {
        if !valid_hash(sha256) {
            return Ok(false);
        }
        match self.inner.head(&self.path_of(sha256)).await {
            Ok(_) => Ok(true),
            Err(S3Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error(&format!("cannot look up {sha256}"), e)),
        }
    }

    async fn sweep_orphans(
        &self,
        referenced: &HashSet<String>,
        grace: Duration,
    ) -> StoreResult<u64> {
        let grace = chrono::TimeDelta::from_std(grace).unwrap_or(chrono::TimeDelta::MAX);
        let now = Utc::now();
        let top = self
            .inner
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| self.error("cannot list the bucket", e))?;
        let mut removed = 0;
        // One listing per shard (`ab/`) keeps each listing a 256th of the
        // whole; keys that are not content addresses are left alone.
        for shard in top.common_prefixes {
            let Some(shard_name) = shard.filename().map(str::to_string) else {
                continue;
            };
            let is_shard = shard_name.len() == 2
                && shard_name
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
            if !is_shard {
                continue;
            }
            let listing = self
                .inner
                .list_with_delimiter(Some(&shard))
                .await
                .map_err(|e| self.error(&format!("cannot list {shard}"), e))?;
            for meta in listing.objects {
                let Some(name) = meta.location.filename() else {
                    continue;
                };
                let ours = valid_hash(name) && name.starts_with(&shard_name);
                if !ours || referenced.contains(name) || now - meta.last_modified < grace {
                    continue;
                }
                match self.inner.delete(&meta.location).await {
                    Ok(()) => removed += 1,
                    Err(S3Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.error(&format!("cannot delete {name}"), e)),
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_an_optional_prefix() {
        let (b, p) = parse_url("s3://attachments").expect("bucket only");
        assert_eq!((b.as_str(), p.as_ref()), ("attachments", ""));
        let (b, p) = parse_url("s3://attachments/motcua/prod/").expect("prefix");
        assert_eq!((b.as_str(), p.as_ref()), ("attachments", "motcua/prod"));
        for bad in [
            "attachments",
            "http://host/bucket",
            "s3://",
            "s3:///prefix",
            "s3://key:secret@bucket",
            "s3://bucket/a//b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn keys_are_sharded_content_addresses() {
        let store = S3ObjectStore::open(&S3Options {
            url: "s3://b/pre/fix".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("us-east-1".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            allow_http: true,
        })
        .expect("open");
        let h = "ab".repeat(32);
        assert_eq!(store.path_of(&h).as_ref(), format!("pre/fix/ab/{h}"));
        assert_eq!(store.to_string(), "s3://b/pre/fix");
    }

    #[test]
    fn an_endpoint_without_keys_is_refused_and_keys_go_together() {
        let endpoint_only = S3Options {
            url: "s3://b".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            allow_http: true,
            ..S3Options::default()
        };
        let e = S3ObjectStore::open(&endpoint_only).expect_err("no keys");
        assert!(e.to_string().contains("needs access_key_id"), "{e}");
        let half = S3Options {
            access_key_id: Some("k".into()),
            ..endpoint_only
        };
        assert!(S3ObjectStore::open(&half).is_err());
    }

    #[test]
    fn the_secret_is_not_printed() {
        let o = S3Options {
            url: "s3://b".into(),
            secret_access_key: Some("very-secret-value".into()),
            ..S3Options::default()
        };
        assert!(!format!("{o:?}").contains("very-secret-value"));
    }
}
