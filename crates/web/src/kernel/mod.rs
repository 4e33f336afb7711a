//! What every module of the web crate stands on: errors as
//! `application/problem+json`, who may call a route (API and page
//! extractors), request bodies, the two languages and their labels, page
//! rendering with its security headers, redirects, the route table,
//! throttling by client, metrics.

pub mod access;
pub mod auth;
pub mod body;
pub mod error;
pub mod i18n;
pub mod labels;
pub mod metrics;
pub mod page;
pub mod redirect;
pub mod routes;
pub mod throttle;
