//! Accounts: passwords (argon2), bearer tokens, roles, opening a citizen
//! account and an officer's verification of a national ID number.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use motcua_domain::DossierCode;
use motcua_domain::audit::AuditEntry;
use motcua_domain::dossier::{Actor, Role};
use motcua_store::User;
use sha2::{Digest, Sha256};

use crate::App;
use crate::dossiers::audit_entry;
use crate::error::{CommandError, CommandResult, FieldProblem};

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash that no password matches, used to spend the same time on an
/// unknown user name as on a known one.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("no such user, no such password").unwrap_or_default())
}

/// A new random bearer token (shown once) and the hash we store.
pub fn new_token() -> Result<(String, String), String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| e.to_string())?;
    let token = hex::encode(raw);
    let hash = token_hash(&token);
    Ok((token, hash))
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn actor_of(u: &User) -> Actor {
    Actor {
        user_id: u.id,
        username: u.username.clone(),
        roles: u.roles.clone(),
        agency: u.agency_code.clone(),
    }
}

pub fn is_staff(u: &User) -> bool {
    u.roles.iter().any(|r| r.is_staff())
}

pub fn has(u: &User, r: Role) -> bool {
    u.roles.contains(&r)
}

/// A user name: 3–32 lower-case letters, digits, dots, hyphens, underscores.
pub fn valid_username(u: &str) -> bool {
    (3..=32).contains(&u.len())
        && u.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

/// What a citizen gives to open an account.
pub struct Registration<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub full_name: &'a str,
    pub national_id: &'a str,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
}

/// Opens a citizen account after checking every field. `Err` carries either
/// the per-field problems (a validation error) or a failure of the system.
pub async fn register_citizen(st: &App, r: Registration<'_>, client: &str) -> CommandResult<User> {
    use motcua_domain::ids::{NationalId, parse_email, parse_phone};
    let mut errs = Vec::new();
    let username = r.username.trim().to_string();
    if !valid_username(&username) {
        errs.push(FieldProblem::new("username", "username-invalid"));
    } else if st.store.user_by_name(&username).await?.is_some() {
        errs.push(FieldProblem::new("username", "username-taken"));
    }
    if r.password.chars().count() < 8 {
        errs.push(FieldProblem::new("password", "password-too-short"));
    }
    let full_name = motcua_domain::text::nfc(r.full_name.trim());
    if motcua_domain::text::has_control(&full_name) {
        errs.push(FieldProblem::new("full_name", "not-text"));
    } else if full_name.chars().count() < 2 {
        let mut p = FieldProblem::new("full_name", "too-short");
        p.params.insert("min".into(), 2.into());
        errs.push(p);
    }
    let nid = NationalId::parse(r.national_id)
        .map_err(|_| errs.push(FieldProblem::new("national_id", "invalid-national-id")))
        .ok();
    let given = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let phone = given(r.phone).and_then(|p| {
        parse_phone(&p)
            .map_err(|_| errs.push(FieldProblem::new("phone", "invalid-phone")))
            .ok()
    });
    let email = given(r.email).and_then(|e| {
        parse_email(&e)
            .map_err(|_| errs.push(FieldProblem::new("email", "invalid-email")))
            .ok()
    });
    let Some(nid) = nid.filter(|_| errs.is_empty()) else {
        return Err(CommandError::Invalid(errs));
    };
    // Each account costs a password hash: limited per address.
    crate::throttle::registration_gate(st, client).await?;
    let password = r.password.to_string();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(CommandError::internal)?
        .map_err(CommandError::internal)?;
    let new = motcua_store::NewUser {
        username: username.clone(),
        password_hash: hash,
        full_name,
        national_id: Some(nid.to_string()),
        phone,
        email,
        roles: vec![Role::Citizen],
        agency_code: None,
    };
    let entry = AuditEntry::new(
        st.clock.now(),
        &username,
        Role::Citizen.as_str(),
        "user.register",
        &serde_json::json!({ "username": username }),
    );
    // The number is stored as typed and verified later (at the counter, or
    // by an identity provider); any number may be typed by several accounts,
    // so the answer never tells whether a number already has one.
    st.store
        .create_user(&new, entry)
        .await
        .map_err(|e| match e {
            motcua_store::StoreError::Duplicate(_) => {
                CommandError::field("username", "username-taken")
            }
            other => other.into(),
        })
}

/// What an officer verified.
pub struct VerifiedCitizen {
    pub user: User,
    pub linked: Vec<DossierCode>,
}

/// An officer who has seen the identity card of the holder of account
/// `username` records that its national ID number is `national_id`: from
/// then on the number grants what a verified one does (counter dossiers
/// under "my dossiers", data read from national registries), and the
/// applicant's counter dossiers without an account are linked to it.
pub async fn verify_citizen(
    st: &App,
    officer: &User,
    username: &str,
    national_id: &str,
    document: &str,
) -> CommandResult<VerifiedCitizen> {
    use motcua_domain::ids::NationalId;
    if !has(officer, Role::Officer) {
        return Err(CommandError::Forbidden(
            "national ID numbers are verified by one-stop officers",
        ));
    }
    let mut errs = Vec::new();
    let nid = NationalId::parse(national_id)
        .map_err(|_| errs.push(FieldProblem::new("national_id", "invalid-national-id")))
        .ok();
    if !matches!(document, "cccd" | "cmnd" | "passport") {
        errs.push(FieldProblem::new("document", "invalid-choice"));
    }
    let user = st.store.user_by_name(username.trim()).await?;
    let user = match user {
        Some(u) if has(&u, Role::Citizen) && !is_staff(&u) => Some(u),
        _ => {
            errs.push(FieldProblem::new("username", "unknown-citizen"));
            None
        }
    };
    let (Some(nid), Some(user), true) = (nid, user, errs.is_empty()) else {
        return Err(CommandError::Invalid(errs));
    };
    let v = motcua_store::Verification {
        at: st.clock.now(),
        by: officer.username.clone(),
        method: motcua_store::VerificationMethod::Counter,
    };
    let mut e = audit_entry(
        st,
        officer,
        Role::Officer,
        "user.verify_national_id",
        &serde_json::json!({ "username": user.username, "national_id": nid.as_str(), "document": document }),
    );
    e.note = Some(format!("{} ({document})", user.username));
    let linked = st
        .store
        .verify_national_id(user.id, nid.as_str(), &v, e)
        .await
        .map_err(|e| match e {
            motcua_store::StoreError::Duplicate(_) => {
                CommandError::field("national_id", "national-id-verified-elsewhere")
            }
            other => other.into(),
        })?;
    let user = st
        .store
        .user(user.id)
        .await?
        .ok_or_else(|| CommandError::NotFound)?;
    Ok(VerifiedCitizen { user, linked })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        let h = hash_password("motcua-demo").expect("hash");
        assert!(verify_password("motcua-demo", &h));
        assert!(!verify_password("wrong", &h));
    }
}
