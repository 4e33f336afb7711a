//! Accounts and their tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use motcua_domain::audit::AuditEntry;
use motcua_domain::{AgencyCode, DossierCode};

use super::{Backend, Conn, SqlStore, args, audit, rows};
use crate::{
    AccountStore, LinkReview, NewUser, StoreError, StoreResult, ThrottleState, User, Verification,
};

pub(super) async fn insert_user(
    c: &mut dyn Conn,
    u: &NewUser,
    at: DateTime<Utc>,
) -> StoreResult<i64> {
    c.int(
        "INSERT INTO users (username, password_hash, full_name, national_id, phone, email, roles, agency_code, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING id",
        args![
            &u.username,
            &u.password_hash,
            &u.full_name,
            &u.national_id,
            &u.phone,
            &u.email,
            rows::roles_to_text(&u.roles),
            u.agency_code.as_ref().map(|a| a.as_str()),
            at,
        ],
    )
    .await?
    .ok_or(StoreError::NotFound)
}

/// The user of `column = value` (a unique column).
pub(super) async fn user_where(
    c: &mut dyn Conn,
    column: UserKey,
    value: super::Arg,
) -> StoreResult<Option<User>> {
    let sql = match column {
        UserKey::Id => "SELECT * FROM users WHERE id = $1",
        UserKey::Name => "SELECT * FROM users WHERE username = $1",
        UserKey::NationalId => "SELECT * FROM users WHERE national_id = $1",
    };
    let row = c.first(sql, vec![value]).await?;
    rows::first(row, rows::user)
}

/// A unique column of `users`.
#[derive(Debug, Clone, Copy)]
pub(super) enum UserKey {
    Id,
    Name,
    NationalId,
}

pub(super) async fn users(c: &mut dyn Conn) -> StoreResult<Vec<User>> {
    let rows = c.fetch("SELECT * FROM users ORDER BY id", vec![]).await?;
    rows::all(rows, rows::user)
}

/// Sets one column of a user; `NotFound` when there is no such user.
pub(super) async fn set_user(
    c: &mut dyn Conn,
    id: i64,
    set: &str,
    value: super::Arg,
) -> StoreResult<()> {
    let sql = format!("UPDATE users SET {set} = $1 WHERE id = $2");
    if c.exec(&sql, vec![value, id.into()]).await? == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn revoke_tokens_of(c: &mut dyn Conn, user_id: i64) -> StoreResult<u64> {
    c.exec(
        "UPDATE tokens SET revoked = TRUE WHERE user_id = $1 AND revoked = FALSE",
        args![user_id],
    )
    .await
}

pub(super) async fn create_token(
    c: &mut dyn Conn,
    token_hash: &str,
    user_id: i64,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> StoreResult<()> {
    c.exec(
        "INSERT INTO tokens (token_hash, user_id, created_at, expires_at) VALUES ($1,$2,$3,$4)",
        args![token_hash, user_id, now, expires_at],
    )
    .await?;
    Ok(())
}

pub(super) async fn token_user(
    c: &mut dyn Conn,
    token_hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<User>> {
    let row = c
        .first(
            "SELECT u.* FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 AND t.revoked = FALSE AND t.expires_at > $2 AND u.disabled = FALSE",
            args![token_hash, now],
        )
        .await?;
    rows::first(row, rows::user)
}

pub(super) async fn revoke_token(c: &mut dyn Conn, token_hash: &str) -> StoreResult<bool> {
    Ok(c.exec(
        "UPDATE tokens SET revoked = TRUE WHERE token_hash = $1 AND revoked = FALSE",
        args![token_hash],
    )
    .await?
        > 0)
}

pub(super) async fn user_by_verified_national_id(
    c: &mut dyn Conn,
    national_id: &str,
) -> StoreResult<Option<User>> {
    let row = c
        .first(
            "SELECT * FROM users WHERE national_id = $1 AND national_id_verified_at IS NOT NULL",
            args![national_id],
        )
        .await?;
    rows::first(row, rows::user)
}

/// Marks `national_id` verified for `user_id` and links the dossiers of
/// that applicant number that have no account; see
/// [`crate::AccountStore::verify_national_id`].
pub(super) async fn verify_national_id(
    c: &mut dyn Conn,
    user_id: i64,
    national_id: &str,
    v: &Verification,
) -> StoreResult<Vec<DossierCode>> {
    let other = c
        .int(
            "SELECT id FROM users WHERE national_id = $1 AND national_id_verified_at IS NOT NULL AND id <> $2",
            args![national_id, user_id],
        )
        .await?;
    if other.is_some() {
        return Err(StoreError::Duplicate(
            "this national ID number is verified for another account".into(),
        ));
    }
    let n = c
        .exec(
            "UPDATE users SET national_id = $1, national_id_verified_at = $2, national_id_verified_by = $3, national_id_verification = $4 WHERE id = $5",
            args![national_id, v.at, &v.by, v.method.as_str(), user_id],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    let linked = c
        .fetch(
            "UPDATE dossiers SET applicant_user_id = $1 WHERE applicant_national_id = $2 AND applicant_user_id IS NULL RETURNING code",
            args![user_id, national_id],
        )
        .await?
        .iter()
        .map(|r| r.parsed("code", DossierCode::parse))
        .collect::<StoreResult<Vec<_>>>()?;
    // Reviews of those dossiers are settled by the verification: the link
    // kept if it was to this account, removed otherwise.
    c.exec(
        "UPDATE link_reviews SET resolved_at = $1, resolved_by = $2, resolution = CASE WHEN user_id = $3 THEN 'kept' ELSE 'removed' END WHERE resolved_at IS NULL AND dossier_id IN (SELECT id FROM dossiers WHERE applicant_national_id = $4)",
        args![v.at, &v.by, user_id, national_id],
    )
    .await?;
    Ok(linked)
}

const LINK_REVIEW_SELECT: &str = "SELECT r.id, d.code, d.agency_code, d.applicant_name, d.applicant_national_id, r.user_id, u.username, CASE WHEN u.national_id_verified_at IS NOT NULL THEN u.national_id END AS verified_nid, r.created_at, r.resolved_at, r.resolved_by, r.resolution FROM link_reviews r JOIN dossiers d ON d.id = r.dossier_id JOIN users u ON u.id = r.user_id";

fn link_review(r: &super::Row) -> StoreResult<LinkReview> {
    Ok(LinkReview {
        id: r.int("id")?,
        dossier_code: r.parsed("code", DossierCode::parse)?,
        agency_code: r.parsed("agency_code", AgencyCode::parse)?,
        applicant_name: r.text("applicant_name")?,
        applicant_national_id: r.text("applicant_national_id")?,
        user_id: r.int("user_id")?,
        username: r.text("username")?,
        user_verified_national_id: r.opt_text("verified_nid")?,
        created_at: r.time("created_at")?,
        resolved_at: r.opt_time("resolved_at")?,
        resolved_by: r.opt_text("resolved_by")?,
        resolution: r.opt_text("resolution")?,
    })
}

pub(super) async fn link_reviews(
    c: &mut dyn Conn,
    open_only: bool,
) -> StoreResult<Vec<LinkReview>> {
    let sql = if open_only {
        format!("{LINK_REVIEW_SELECT} WHERE r.resolved_at IS NULL ORDER BY r.id")
    } else {
        format!("{LINK_REVIEW_SELECT} ORDER BY r.id")
    };
    let rows = c.fetch(&sql, vec![]).await?;
    rows::all(rows, link_review)
}

pub(super) async fn resolve_link_review(
    c: &mut dyn Conn,
    id: i64,
    keep: bool,
    by: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = format!("{LINK_REVIEW_SELECT} WHERE r.id = $1");
    let Some(review) = rows::first(c.first(&sql, args![id]).await?, link_review)? else {
        return Err(StoreError::NotFound);
    };
    if review.resolved_at.is_some() {
        return Err(StoreError::Conflict);
    }
    if keep {
        if review.user_verified_national_id.as_deref() != Some(&review.applicant_national_id) {
            return Err(StoreError::Invalid(
                "the account's national ID number is not verified as the applicant's".into(),
            ));
        }
        c.exec(
            "UPDATE dossiers SET applicant_user_id = $1 WHERE code = $2",
            args![review.user_id, review.dossier_code.as_str()],
        )
        .await?;
    }
    let n = c
        .exec(
            "UPDATE link_reviews SET resolved_at = $1, resolved_by = $2, resolution = $3 WHERE id = $4 AND resolved_at IS NULL",
            args![at, by, if keep { "kept" } else { "removed" }, id],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

pub(super) async fn throttle_read(
    c: &mut dyn Conn,
    keys: &[String],
) -> StoreResult<Vec<ThrottleState>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT key, failures, window_start, last_at FROM throttle WHERE key IN ({})",
        super::marks(1, keys.len())
    );
    let rows = c
        .fetch(&sql, keys.iter().map(super::Arg::from).collect())
        .await?;
    rows::all(rows, rows::throttle)
}

pub(super) async fn throttle_hit(
    c: &mut dyn Conn,
    key: &str,
    now: DateTime<Utc>,
    window: chrono::Duration,
) -> StoreResult<()> {
    c.exec(
        "INSERT INTO throttle (key, failures, window_start, last_at) VALUES ($1, 1, $2, $2) ON CONFLICT (key) DO UPDATE SET failures = CASE WHEN throttle.window_start < $3 THEN 1 ELSE throttle.failures + 1 END, window_start = CASE WHEN throttle.window_start < $3 THEN $2 ELSE throttle.window_start END, last_at = $2",
        args![key, now, now - window],
    )
    .await?;
    Ok(())
}

pub(super) async fn throttle_clear(
    c: &mut dyn Conn,
    keys: &[String],
    idle_before: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = format!(
        "DELETE FROM throttle WHERE last_at < $1{}",
        if keys.is_empty() {
            String::new()
        } else {
            format!(" OR key IN ({})", super::marks(2, keys.len()))
        }
    );
    let mut a = args![idle_before];
    a.extend(keys.iter().map(super::Arg::from));
    c.exec(&sql, a).await?;
    Ok(())
}

#[async_trait]
impl<B: Backend> AccountStore for SqlStore<B> {
    async fn create_user(&self, u: &NewUser, entry: AuditEntry) -> StoreResult<User> {
        let at = entry.at;
        let mut tx = self.begin().await?;
        let id = insert_user(tx.conn(), u, at).await?;
        audit::append_audit(tx.conn(), &self.signer, entry).await?;
        let user = user_where(tx.conn(), UserKey::Id, id.into()).await?;
        tx.commit().await?;
        user.ok_or(StoreError::NotFound)
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>> {
        user_where(self.read().await?.as_mut(), UserKey::Name, username.into()).await
    }

    async fn user(&self, id: i64) -> StoreResult<Option<User>> {
        user_where(self.read().await?.as_mut(), UserKey::Id, id.into()).await
    }

    async fn user_by_national_id(&self, national_id: &str) -> StoreResult<Option<User>> {
        user_where(
            self.read().await?.as_mut(),
            UserKey::NationalId,
            national_id.into(),
        )
        .await
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        users(self.read().await?.as_mut()).await
    }

    async fn user_by_verified_national_id(&self, national_id: &str) -> StoreResult<Option<User>> {
        user_by_verified_national_id(self.read().await?.as_mut(), national_id).await
    }

    async fn verify_national_id(
        &self,
        user_id: i64,
        national_id: &str,
        v: &Verification,
        entry: AuditEntry,
    ) -> StoreResult<Vec<DossierCode>> {
        let mut tx = self.begin().await?;
        let linked = verify_national_id(tx.conn(), user_id, national_id, v).await?;
        self.finish(tx, entry).await?;
        Ok(linked)
    }

    async fn link_reviews(&self, open_only: bool) -> StoreResult<Vec<LinkReview>> {
        link_reviews(self.read().await?.as_mut(), open_only).await
    }

    async fn resolve_link_review(
        &self,
        id: i64,
        keep: bool,
        by: &str,
        at: DateTime<Utc>,
        entry: AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        resolve_link_review(tx.conn(), id, keep, by, at).await?;
        self.finish(tx, entry).await
    }

    async fn throttle_read(&self, keys: &[String]) -> StoreResult<Vec<ThrottleState>> {
        throttle_read(self.read().await?.as_mut(), keys).await
    }

    async fn throttle_hit(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        window: chrono::Duration,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        for k in keys {
            throttle_hit(tx.conn(), k, now, window).await?;
        }
        tx.commit().await
    }

    async fn throttle_clear(&self, keys: &[String], idle_before: DateTime<Utc>) -> StoreResult<()> {
        throttle_clear(self.write().await?.as_mut(), keys, idle_before).await
    }

    async fn set_user_disabled(
        &self,
        id: i64,
        disabled: bool,
        entry: AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        set_user(tx.conn(), id, "disabled", disabled.into()).await?;
        if disabled {
            revoke_tokens_of(tx.conn(), id).await?;
        }
        self.finish(tx, entry).await
    }

    async fn set_password(
        &self,
        id: i64,
        password_hash: &str,
        entry: AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        set_user(tx.conn(), id, "password_hash", password_hash.into()).await?;
        revoke_tokens_of(tx.conn(), id).await?;
        self.finish(tx, entry).await
    }

    async fn create_token(
        &self,
        token_hash: &str,
        user_id: i64,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        create_token(
            self.write().await?.as_mut(),
            token_hash,
            user_id,
            Utc::now(),
            expires_at,
        )
        .await
    }

    async fn token_user(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<User>> {
        token_user(self.read().await?.as_mut(), token_hash, now).await
    }

    async fn revoke_token(&self, token_hash: &str) -> StoreResult<bool> {
        revoke_token(self.write().await?.as_mut(), token_hash).await
    }

    async fn revoke_user_tokens(&self, user_id: i64) -> StoreResult<u64> {
        revoke_tokens_of(self.write().await?.as_mut(), user_id).await
    }
}
