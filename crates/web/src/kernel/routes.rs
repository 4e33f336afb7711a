//! The route table: every route is added here with its method, so that the
//! router and the list a test walks are one and the same. Who may call a
//! route is declared by the extractors of its handler; [`PUBLIC`] is the
//! one list of routes that anyone may call.

use axum::Router;
use axum::handler::Handler;
use axum::routing::MethodRouter;

use crate::state::AppState;

/// One route: its method and path pattern (`{name}` for a parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
}

/// Routes that need no signed-in caller. Everything else answers 401 (API)
/// or sends to the sign-in page, before reading any body.
pub const PUBLIC: &[(&str, &str)] = &[
    ("POST", "/api/v1/auth/token"),
    ("DELETE", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/register"),
    ("GET", "/api/v1/procedures"),
    ("GET", "/api/v1/procedures/{code}"),
    ("GET", "/api/v1/track/{code}"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/docs"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/"),
    ("GET", "/static/app.css"),
    ("GET", "/ngon-ngu"),
    ("GET", "/thu-tuc"),
    ("GET", "/thu-tuc/{code}"),
    ("GET", "/tra-cuu"),
    ("GET", "/dang-nhap"),
    ("POST", "/dang-nhap"),
    ("GET", "/dang-ky"),
    ("POST", "/dang-ky"),
    ("POST", "/dang-xuat"),
    ("POST", "/dang-xuat-tat-ca"),
];

/// Whether `r` is in [`PUBLIC`].
pub fn is_public(r: &Route) -> bool {
    PUBLIC.iter().any(|(m, p)| *m == r.method && *p == r.path)
}

/// A router being built, with its table.
#[derive(Default)]
pub struct Table {
    router: Router<AppState>,
    routes: Vec<Route>,
}

impl Table {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(mut self, method: &'static str, path: &'static str, mr: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, mr);
        self.routes.push(Route { method, path });
        self
    }

    pub fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add("GET", path, axum::routing::get(h))
    }

    pub fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add("POST", path, axum::routing::post(h))
    }

    pub fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add("DELETE", path, axum::routing::delete(h))
    }

    /// Wraps the routes added so far (middleware layers).
    pub fn wrap(mut self, f: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Self {
        self.router = f(self.router);
        self
    }

    pub fn merge(mut self, other: Table) -> Self {
        self.router = self.router.merge(other.router);
        self.routes.extend(other.routes);
        self
    }

    pub fn into_parts(self) -> (Router<AppState>, Vec<Route>) {
        (self.router, self.routes)
    }
}
