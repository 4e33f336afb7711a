//! Verifying a citizen's national ID number at the counter.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use motcua_domain::dossier::Role;
use motcua_store::User;
use serde::Deserialize;

use crate::kernel::access::{CheckedForm, OfficerPage, WithCsrf};
use crate::kernel::error::ApiError;
use crate::kernel::labels::by_field;
use crate::kernel::labels::problem_text;
use crate::kernel::page::Ctx;
use crate::kernel::page::PageResult;
use crate::kernel::page::fmt_dt;
use crate::state::AppState;

// ---------------------------------------------------------------------------
// Verifying a citizen's national ID number at the counter
// ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "accounts/verify_citizen.html")]
struct VerifyPage<'a> {
    ctx: &'a Ctx,
    title: String,
    done: Option<String>,
    linked: Vec<String>,
    summary: Vec<(String, String)>,
    username: String,
    username_error: Option<String>,
    /// What the account says of its holder, to compare with the card.
    account: Option<Vec<(String, String)>>,
    national_id: String,
    nid_error: Option<String>,
    seen_error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct VerifyQuery {
    #[serde(rename = "tai-khoan")]
    username: Option<String>,
}

/// The account's facts an officer compares with the identity card.
fn account_facts(ctx: &Ctx, u: &User) -> Vec<(String, String)> {
    let verified = match &u.national_id_verified {
        Some(v) => {
            let mut args = serde_json::Map::new();
            args.insert("at".into(), fmt_dt(v.at).into());
            args.insert("by".into(), v.by.clone().into());
            ctx.lang.text_with("verify-already", &args)
        }
        None => ctx.t("verify-not-yet"),
    };
    vec![
        (ctx.t("reg-full-name"), u.full_name.clone()),
        (
            ctx.t("verify-typed-number"),
            u.national_id.clone().unwrap_or_default(),
        ),
        (ctx.t("reg-phone"), u.phone.clone().unwrap_or_default()),
        (ctx.t("verify-status"), verified),
    ]
}

async fn render_verify(
    st: &AppState,
    ctx: &Ctx,
    username: &str,
    typed: Option<&str>,
    errs: &[crate::kernel::error::FieldProblem],
    done: Option<(String, Vec<String>)>,
) -> PageResult {
    let by = by_field(errs);
    let msg = |f: &str| by.get(f).map(|p| problem_text(ctx.lang, p));
    let mut username_error = msg("username");
    let account = if username.is_empty() {
        None
    } else {
        match st.store.user_by_name(username).await? {
            Some(u)
                if motcua_commands::accounts::has(&u, Role::Citizen)
                    && !motcua_commands::accounts::is_staff(&u) =>
            {
                Some((
                    account_facts(ctx, &u),
                    u.national_id.clone().unwrap_or_default(),
                ))
            }
            _ => {
                username_error = Some(ctx.t("field-unknown-citizen"));
                None
            }
        }
    };
    let (nid_error, seen_error) = (msg("national_id"), msg("seen"));
    let summary = [
        ("#tai-khoan", &username_error),
        ("#national_id", &nid_error),
        ("#seen-err", &seen_error),
    ]
    .into_iter()
    .filter_map(|(href, e)| e.clone().map(|e| (href.to_string(), e)))
    .collect::<Vec<_>>();
    let status = if errs.is_empty() && username_error.is_none() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let (facts, registered) = account.unzip();
    let page = VerifyPage {
        ctx,
        title: ctx.t("verify-title"),
        done: done.as_ref().map(|d| d.0.clone()),
        linked: done.map(|d| d.1).unwrap_or_default(),
        summary,
        username: username.to_string(),
        username_error,
        account: facts,
        national_id: typed.map(str::to_string).or(registered).unwrap_or_default(),
        nid_error,
        seen_error,
    };
    Ok(ctx.render(status, page.render()))
}

/// `GET /can-bo/xac-thuc?tai-khoan=…` (one-stop officers): finds a
/// citizen's account to compare with the identity card they brought.
pub async fn verify_form(
    State(st): State<AppState>,
    ctx: Ctx,
    _officer: OfficerPage,
    Query(q): Query<VerifyQuery>,
) -> PageResult {
    let username = q.username.unwrap_or_default().trim().to_string();
    render_verify(&st, &ctx, &username, None, &[], None).await
}

impl WithCsrf for VerifyForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

#[derive(Deserialize)]
pub struct VerifyForm {
    csrf: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    national_id: String,
    #[serde(default)]
    document: String,
    seen: Option<String>,
}

/// `POST /can-bo/xac-thuc`: records that the officer saw the card.
pub async fn verify_submit(
    State(st): State<AppState>,
    ctx: Ctx,
    OfficerPage(officer): OfficerPage,
    CheckedForm(f): CheckedForm<VerifyForm>,
) -> PageResult {
    let username = f.username.trim().to_string();
    if f.seen.as_deref() != Some("1") {
        let e = crate::kernel::error::FieldProblem::new("seen", "verify-not-seen");
        return render_verify(&st, &ctx, &username, Some(&f.national_id), &[e], None).await;
    }
    match motcua_commands::accounts::verify_citizen(
        &st,
        &officer,
        &username,
        &f.national_id,
        &f.document,
    )
    .await
    .map_err(ApiError::from)
    {
        Ok(v) => {
            let mut args = serde_json::Map::new();
            args.insert("name".into(), v.user.full_name.clone().into());
            args.insert("n".into(), v.linked.len().into());
            let msg = ctx.lang.text_with("verify-done", &args);
            let linked = v.linked.iter().map(|c| c.to_string()).collect();
            render_verify(&st, &ctx, &username, None, &[], Some((msg, linked))).await
        }
        Err(e) if !e.fields.is_empty() => {
            render_verify(&st, &ctx, &username, Some(&f.national_id), &e.fields, None).await
        }
        Err(e) => Err(e),
    }
}
