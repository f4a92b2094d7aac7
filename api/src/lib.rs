//! strata-api: the HTTP face of Strata. One actix-web service per OpenStack API (Keystone, Glance, Nova,
//! Cinder), the request-id middleware, token authentication, policy, and each service's own error format.
//!
//! Architecture invariant: handlers hold no state of their own. A write is `policy -> validate -> command to
//! an aggregate -> wait for the projection to reach the write's position -> answer from the projection`; a
//! read answers from a projection. A rejected request appends nothing.

pub mod audit;
pub mod auth;
pub mod common;
pub mod compute;
pub mod fault;
pub mod identity;
pub mod image;
pub mod microversion;
pub mod network;
pub mod object;
pub mod policy;
pub mod server;
pub mod volume;

pub use server::{Ports, ServiceAddrs, Services};
