//! The rules of motcua, free of I/O: administrative units and agencies,
//! procedure definitions, the dossier state machine, the working-day
//! calendar and the audit chain. Everything here can be tested with plain
//! values.
#![forbid(unsafe_code)]

pub mod audit;
pub mod calendar;
pub mod dossier;
pub mod ids;
pub mod procedure;
pub mod strings;
pub mod text;
pub mod throttle;
pub mod units;

pub use ids::{AgencyCode, DossierCode, NationalId, UnitCode, Vnd};
