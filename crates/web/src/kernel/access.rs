//! Who may open a page, declared in the handler's signature.
//!
//! Each extractor reads the request's [`Ctx`] (built once per request) and
//! refuses with [`Refused`]: a redirect to the sign-in page for someone not
//! signed in, an error page (403) for someone signed in without the role.
//! Form bodies come through [`CheckedForm`] and [`CheckedMultipart`], which
//! check the CSRF token before the handler runs. Extractors of who run
//! before the body is read, so a stranger's body is never parsed.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use motcua_domain::dossier::Role;
use motcua_store::User;
use serde::de::DeserializeOwned;

use crate::kernel::body::FormData;
use crate::kernel::error::ApiError;
use crate::kernel::page::Ctx;
use crate::state::AppState;

/// Why a page was refused.
pub enum Refused {
    /// Not signed in: to the sign-in page, and back afterwards.
    SignIn(Redirect),
    /// Signed in without the right, or a request that is not valid.
    Error(ApiError),
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Refused::Error(e)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::SignIn(r) => r.into_response(),
            Refused::Error(e) => e.into_response(),
        }
    }
}

async fn ctx_of(parts: &mut Parts, st: &AppState) -> Result<Ctx, Refused> {
    Ok(Ctx::from_request_parts(parts, st).await?)
}

/// Anyone signed in.
pub struct SignedIn(pub User);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Refused> {
        let ctx = ctx_of(parts, st).await?;
        ctx.require_user().map(SignedIn).map_err(Refused::SignIn)
    }
}

/// A citizen (files dossiers online).
pub struct CitizenPage(pub User);

impl FromRequestParts<AppState> for CitizenPage {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Refused> {
        let SignedIn(u) = SignedIn::from_request_parts(parts, st).await?;
        if motcua_commands::accounts::has(&u, Role::Citizen) {
            Ok(CitizenPage(u))
        } else {
            Err(ApiError::forbidden().into())
        }
    }
}

/// A staff member of an agency.
pub struct StaffPage(pub User);

impl FromRequestParts<AppState> for StaffPage {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Refused> {
        let SignedIn(u) = SignedIn::from_request_parts(parts, st).await?;
        Ok(StaffPage::of(u)?)
    }
}

impl StaffPage {
    /// `u` as a staff member, or 403: for a route that some signed-in
    /// users are sent on from, and only staff may read.
    pub fn of(u: User) -> Result<Self, ApiError> {
        if motcua_commands::accounts::is_staff(&u) && u.agency_code.is_some() {
            Ok(StaffPage(u))
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// A one-stop officer.
pub struct OfficerPage(pub User);

impl FromRequestParts<AppState> for OfficerPage {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Refused> {
        let StaffPage(u) = StaffPage::from_request_parts(parts, st).await?;
        if motcua_commands::accounts::has(&u, Role::Officer) {
            Ok(OfficerPage(u))
        } else {
            Err(ApiError::forbidden().into())
        }
    }
}

/// An agency or province administrator, with what they manage.
pub struct AdminPage(pub(crate) crate::admin::Admin);

impl FromRequestParts<AppState> for AdminPage {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Refused> {
        let SignedIn(u) = SignedIn::from_request_parts(parts, st).await?;
        Ok(AdminPage(crate::admin::admin_of(st, u).await?))
    }
}

/// A province administrator (the catalogue, agencies and holidays of the
/// province).
pub struct ProvinceAdminPage(pub(crate) crate::admin::Admin);

impl FromRequestParts<AppState> for ProvinceAdminPage {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Refused> {
        let AdminPage(a) = AdminPage::from_request_parts(parts, st).await?;
        if a.is_province() {
            Ok(ProvinceAdminPage(a))
        } else {
            Err(ApiError::forbidden().into())
        }
    }
}

/// A province administrator at the exchange registry's pages, with the
/// exchange (503 when this node runs none).
pub struct ExchangeAdminPage(pub User, pub Arc<crate::exchange::api::ExchangeHandle>);

impl FromRequestParts<AppState> for ExchangeAdminPage {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Refused> {
        let SignedIn(u) = SignedIn::from_request_parts(parts, st).await?;
        if !motcua_commands::accounts::has(&u, Role::ProvinceAdmin) {
            return Err(ApiError::forbidden().into());
        }
        let ex = st.exchange.clone().ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "exchange-disabled",
            )
        })?;
        Ok(ExchangeAdminPage(u, ex))
    }
}

/// A form that carries a CSRF token.
pub trait WithCsrf {
    fn csrf(&self) -> Option<&str>;
}

/// An urlencoded form whose CSRF token is this session's.
pub struct CheckedForm<T>(pub T);

impl<T: DeserializeOwned + WithCsrf + Send> FromRequest<AppState> for CheckedForm<T> {
    type Rejection = Refused;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, Refused> {
        let (mut parts, body) = req.into_parts();
        let ctx = ctx_of(&mut parts, st).await?;
        let req = Request::from_parts(parts, body);
        let axum::Form(f) = axum::Form::<T>::from_request(req, st)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        ctx.check_csrf(f.csrf())?;
        Ok(CheckedForm(f))
    }
}

/// A multipart form whose CSRF token is this session's. Files over the
/// size limit refuse the whole form.
pub struct CheckedMultipart(pub FormData);

/// [`CheckedMultipart`] that keeps what was typed when a file is too large
/// (the refused files are listed in [`FormData::rejected`]).
pub struct CheckedMultipartKeeping(pub FormData);

async fn checked_multipart(
    req: Request,
    st: &AppState,
    keeping: bool,
) -> Result<FormData, Refused> {
    let (mut parts, body) = req.into_parts();
    let ctx = ctx_of(&mut parts, st).await?;
    let req = Request::from_parts(parts, body);
    let mp = Multipart::from_request(req, st)
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    let form = if keeping {
        FormData::read_keeping_input(st, mp).await?
    } else {
        FormData::read(st, mp).await?
    };
    ctx.check_csrf(form.get("csrf"))?;
    Ok(form)
}

impl FromRequest<AppState> for CheckedMultipart {
    type Rejection = Refused;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, Refused> {
        checked_multipart(req, st, false)
            .await
            .map(CheckedMultipart)
    }
}

impl FromRequest<AppState> for CheckedMultipartKeeping {
    type Rejection = Refused;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, Refused> {
        checked_multipart(req, st, true)
            .await
            .map(CheckedMultipartKeeping)
    }
}
