//! The data exchange: its registry API and pages (province
//! administrators), publish/subscribe, the gateway's monitoring page, and
//! once-only prefill of forms from registries.

pub mod api;
pub mod pages;
pub mod prefill;
pub mod pubsub;

use crate::kernel::routes::Table;
use crate::state::AppState;

pub fn routes(state: AppState) -> Table {
    Table::new()
        .get("/api/v1/exchange/registry", api::get_registry)
        .get("/api/v1/exchange/metrics", api::get_metrics)
        .post("/api/v1/exchange/members", api::add_member)
        .post("/api/v1/exchange/members/remove", api::remove_member)
        .post("/api/v1/exchange/subsystems", api::add_subsystem)
        .post("/api/v1/exchange/subsystems/remove", api::remove_subsystem)
        .post("/api/v1/exchange/services", api::put_service)
        .post("/api/v1/exchange/services/remove", api::remove_service)
        .post("/api/v1/exchange/access/grant", api::grant)
        .post("/api/v1/exchange/access/revoke", api::revoke)
        .post("/api/v1/exchange/api-keys", api::create_api_key)
        .post("/api/v1/exchange/api-keys/{id}/revoke", api::revoke_api_key)
        .post("/api/v1/exchange/client-certs", api::add_client_cert)
        .post(
            "/api/v1/exchange/client-certs/remove",
            api::remove_client_cert,
        )
        .get("/api/v1/exchange/pubsub/event-types", pubsub::event_types)
        .get(
            "/api/v1/exchange/pubsub/subscriptions",
            pubsub::list_subscriptions,
        )
        .post(
            "/api/v1/exchange/pubsub/subscriptions",
            pubsub::create_subscription,
        )
        .delete(
            "/api/v1/exchange/pubsub/subscriptions/{id}",
            pubsub::delete_subscription,
        )
        .get("/api/v1/exchange/pubsub/deliveries", pubsub::deliveries)
        .merge(pages::routes(state))
}

/// The exchange's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    api::get_registry,
    api::get_metrics,
    api::add_member,
    api::remove_member,
    api::add_subsystem,
    api::remove_subsystem,
    api::put_service,
    api::remove_service,
    api::grant,
    api::revoke,
    api::create_api_key,
    api::revoke_api_key,
    api::add_client_cert,
    api::remove_client_cert,
    pubsub::event_types,
    pubsub::list_subscriptions,
    pubsub::create_subscription,
    pubsub::delete_subscription,
    pubsub::deliveries
))]
pub struct ApiDoc;
