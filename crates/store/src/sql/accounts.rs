//! Accounts and their tokens.

use chrono::{DateTime, Utc};

use super::{Conn, args, rows};
use crate::{NewUser, StoreError, StoreResult, User};

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
