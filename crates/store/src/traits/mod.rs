//! The sub-traits of [`crate::Store`], one per module, each with the types
//! only it uses.

pub mod accounts;
pub mod audit;
pub mod catalogue;
pub mod dossiers;
pub mod maintenance;
pub mod outbox;
pub mod pubsub;
pub mod settings;
