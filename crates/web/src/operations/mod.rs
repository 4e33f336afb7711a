//! Operating the platform: health, readiness and Prometheus metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::kernel::error::ApiError;
use crate::kernel::routes::Table;
use crate::state::AppState;

/// The operations routes (public: a load balancer and a scraper call
/// them without an account).
pub fn routes() -> Table {
    Table::new()
        .get("/healthz", healthz)
        .get("/readyz", readyz)
        .get("/metrics", metrics_text)
}

/// The operations part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, metrics_text))]
pub struct ApiDoc;

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The text `ok`", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "The text `ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "The database does not answer (the text `database unavailable`)", body = String, content_type = "text/plain")))]
async fn readyz(State(st): State<AppState>) -> Response {
    match st.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
async fn metrics_text(State(st): State<AppState>) -> Result<Response, ApiError> {
    let counts = crate::dossiers::api::status_counts(&st).await?;
    let pending = st.store.pending_events().await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let mut text = st.metrics.render(&counts, pending);
            if let Some(gw) = st.exchange.as_ref().and_then(|e| e.gateway()) {
                text.push_str(&gw.render_prometheus());
            }
            text
        },
    )
        .into_response())
}
