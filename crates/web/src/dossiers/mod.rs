//! Dossiers: submitting (online and at the counter), the one-stop
//! lifecycle, the workqueue, receipts, the printable forms and public
//! tracking — API and pages.

pub mod api;
pub mod apply;
pub mod forms;
pub mod pages;
pub mod staff;
pub mod support;
pub mod views;

use crate::kernel::page;
use crate::kernel::routes::Table;
use crate::state::AppState;

pub fn routes(state: AppState) -> Table {
    Table::new()
        .post("/api/v1/dossiers", api::submit)
        .get("/api/v1/dossiers", api::list_dossiers)
        .get("/api/v1/dossiers/{code}", api::get_dossier)
        .get(
            "/api/v1/dossiers/{code}/documents/{index}",
            api::get_document,
        )
        .post("/api/v1/dossiers/{code}/actions", api::act)
        .get("/api/v1/workqueue", api::workqueue)
        .get("/api/v1/track/{code}", api::track)
        .merge(page::pages(
            state,
            Table::new()
                .get("/thu-tuc/{code}/nop-ho-so", apply::apply_form)
                .post("/thu-tuc/{code}/nop-ho-so", apply::apply_submit)
                .get("/tra-cuu", pages::track)
                .get("/ho-so", pages::my_dossiers)
                .get("/ho-so/{code}", pages::dossier)
                .get("/ho-so/{code}/bien-nhan", pages::receipt)
                .get("/ho-so/{code}/tai-lieu/{index}", pages::document)
                .post("/ho-so/{code}/thao-tac", pages::act)
                .get("/ho-so/{code}/mau-phieu", forms::index)
                .get("/ho-so/{code}/mau-phieu/{n}", forms::form)
                .get("/can-bo", staff::workqueue)
                .get("/can-bo/tiep-nhan", staff::counter_form)
                .post("/can-bo/tiep-nhan", staff::counter_submit),
        ))
}

/// The dossiers' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    api::submit,
    api::get_dossier,
    api::get_document,
    api::list_dossiers,
    api::workqueue,
    api::act,
    api::track
))]
pub struct ApiDoc;
