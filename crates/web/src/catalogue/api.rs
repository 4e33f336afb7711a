//! The catalogue API: procedures, searchable, and one definition.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::catalogue::views::ProcedureSummary;
use crate::kernel::body::ApiResult;
use crate::kernel::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ProcedureQuery {
    /// Search text; diacritics and case are ignored.
    pub q: Option<String>,
    pub sector: Option<String>,
    /// `province` or `commune`.
    pub level: Option<String>,
}

/// `GET /api/v1/procedures`
#[utoipa::path(get, path = "/api/v1/procedures", tag = "procedures", params(ProcedureQuery),
    responses((status = 200, body = Vec<ProcedureSummary>), (status = 400)))]
pub async fn list_procedures(
    State(st): State<AppState>,
    Query(q): Query<ProcedureQuery>,
) -> ApiResult<Json<Vec<ProcedureSummary>>> {
    let all = st.catalogue().await?;
    let out = all
        .iter()
        .filter(|(p, folded)| {
            q.q.as_deref()
                .is_none_or(|t| motcua_domain::text::matches_query(folded, t))
                && q.sector.as_deref().is_none_or(|s| p.sector == s)
                && q.level.as_deref().is_none_or(|l| p.level.as_str() == l)
        })
        .map(|(p, _)| ProcedureSummary::of(p))
        .collect();
    Ok(Json(out))
}

/// `GET /api/v1/procedures/{code}`: the full definition of the current version.
#[utoipa::path(get, path = "/api/v1/procedures/{code}", tag = "procedures",
    params(("code" = String, Path, description = "National procedure code, e.g. 1.001193")),
    responses((status = 200, description = "The procedure definition (see docs/procedure-format.md)", body = Object), (status = 400), (status = 404)))]
pub async fn get_procedure(
    State(st): State<AppState>,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let p = st
        .store
        .current_procedure(&code)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(p.definition).into_response())
}
