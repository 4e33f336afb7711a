//! Counter dossiers linked to accounts before numbers were verified,
//! for review.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use motcua_store::StoreError;

use crate::admin::DoneQuery;
use crate::admin::flash_of;
use crate::kernel::access::{AdminPage, CheckedMultipart};
use crate::kernel::error::ApiError;
use crate::kernel::page::Ctx;
use crate::kernel::page::PageResult;
use crate::state::AppState;

// ---------------------------------------------------------------------------
// Counter dossiers linked to accounts before numbers were verified
// ---------------------------------------------------------------------------

pub struct LinkRow {
    pub id: i64,
    pub code: String,
    pub applicant: String,
    pub username: String,
    pub state: String,
    pub open: bool,
    /// The account's number is verified as the applicant's.
    pub can_keep: bool,
}

#[derive(Template)]
#[template(path = "admin/links.html")]
struct LinksPage<'a> {
    ctx: &'a Ctx,
    title: String,
    section: &'static str,
    flash: Option<String>,
    rows: Vec<LinkRow>,
}

/// `GET /quan-tri/lien-ket-ho-so`: counter dossiers that an earlier
/// release linked to an account by a national ID number nobody had
/// verified, for the administrators of their agencies to keep (once the
/// account's number is verified as the applicant's) or remove.
pub async fn link_reviews(
    State(st): State<AppState>,
    ctx: Ctx,
    AdminPage(a): AdminPage,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let rows = st
        .store
        .link_reviews(false)
        .await?
        .into_iter()
        .filter(|r| a.manages(&r.agency_code))
        .map(|r| LinkRow {
            id: r.id,
            code: r.dossier_code.to_string(),
            applicant: r.applicant_name.clone(),
            can_keep: r.user_verified_national_id.as_deref() == Some(&r.applicant_national_id),
            state: match r.resolution.as_deref() {
                Some("kept") => ctx.t("links-kept"),
                Some(_) => ctx.t("links-removed"),
                None => ctx.t("links-open"),
            },
            open: r.resolved_at.is_none(),
            username: r.username,
        })
        .collect();
    let page = LinksPage {
        ctx: &ctx,
        title: ctx.t("links-title"),
        section: "links",
        flash: flash_of(&ctx, &q),
        rows,
    };
    Ok(ctx.render(StatusCode::OK, page.render()))
}

/// `POST /quan-tri/lien-ket-ho-so/{id}`: `decision` is `keep` or `remove`.
pub async fn link_review_decide(
    State(st): State<AppState>,
    AdminPage(a): AdminPage,
    Path(id): Path<String>,
    CheckedMultipart(form): CheckedMultipart,
) -> PageResult {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let review = st
        .store
        .link_reviews(false)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(ApiError::not_found)?;
    if !a.manages(&review.agency_code) {
        return Err(ApiError::forbidden());
    }
    let keep = match form.get("decision") {
        Some("keep") => true,
        Some("remove") => false,
        _ => return Err(ApiError::field("decision", "invalid-choice")),
    };
    let mut e = a.entry(
        &st,
        if keep { "dossier.link_keep" } else { "dossier.link_remove" },
        &serde_json::json!({ "review": id, "dossier": review.dossier_code.as_str(), "user": review.username }),
    );
    e.dossier_code = Some(review.dossier_code.to_string());
    e.agency_code = Some(review.agency_code.to_string());
    let now = st.clock.now();
    match st
        .store
        .resolve_link_review(id, keep, &a.user.username, now, e)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Invalid(_)) => {
            return Err(ApiError::new(StatusCode::CONFLICT, "link-not-verified"));
        }
        Err(StoreError::Conflict) => return Err(ApiError::new(StatusCode::CONFLICT, "conflict")),
        Err(other) => return Err(other.into()),
    }
    let k = if keep { "link-kept" } else { "link-removed" };
    Ok(Redirect::to(&format!("/quan-tri/lien-ket-ho-so?xong={k}")).into_response())
}
