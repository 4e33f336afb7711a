//! Accounts: tokens and sessions (sign-in, sign-out), registration, the
//! caller's account, and an officer's verification of a national ID
//! number — API and pages.

pub mod api;
pub mod pages;
pub mod verify;
pub mod views;

use crate::kernel::page;
use crate::kernel::routes::Table;
use crate::state::AppState;

pub fn routes(state: AppState) -> Table {
    Table::new()
        .post("/api/v1/auth/token", api::issue_token)
        .delete("/api/v1/auth/token", api::revoke_token)
        .post("/api/v1/auth/register", api::register)
        .get("/api/v1/me", api::me)
        .post(
            "/api/v1/accounts/{username}/verify-national-id",
            api::verify_national_id,
        )
        .merge(page::pages(
            state,
            Table::new()
                .get("/dang-nhap", pages::login_form)
                .post("/dang-nhap", pages::login)
                .get("/dang-ky", pages::register_form)
                .post("/dang-ky", pages::register)
                .post("/dang-xuat", pages::logout)
                .post("/dang-xuat-tat-ca", pages::logout_everywhere)
                .get("/can-bo/xac-thuc", verify::verify_form)
                .post("/can-bo/xac-thuc", verify::verify_submit),
        ))
}

/// The accounts' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    api::issue_token,
    api::revoke_token,
    api::register,
    api::me,
    api::verify_national_id
))]
pub struct ApiDoc;
