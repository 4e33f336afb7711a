//! The procedure catalogue: its API and the portal's home, list and
//! procedure pages.

pub mod api;
pub mod pages;
pub mod views;

use crate::kernel::page;
use crate::kernel::routes::Table;
use crate::state::AppState;

pub fn routes(state: AppState) -> Table {
    Table::new()
        .get("/api/v1/procedures", api::list_procedures)
        .get("/api/v1/procedures/{code}", api::get_procedure)
        .merge(page::pages(
            state,
            Table::new()
                .get("/", pages::home)
                .get("/thu-tuc", pages::catalogue)
                .get("/thu-tuc/{code}", pages::procedure),
        ))
}

/// The catalogue's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(api::list_procedures, api::get_procedure))]
pub struct ApiDoc;
