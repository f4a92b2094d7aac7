//! `/v2.0/{collection}/{id}/tags` for any resource kind that registers a [`TagResource`].

use actix_web::web;

use super::{Caller, Networks, NeutronError};

/// A kind of resource whose tags `/v2.0/<collection>/{id}/tags` reads and replaces.
#[async_trait::async_trait(?Send)]
pub trait TagResource: Send + Sync {
    /// The URL collection: "networks", "subnets", "ports", "routers", ...
    fn collection(&self) -> &str;
    /// The resource's tags, if `caller` may see it (404 otherwise).
    async fn tags(
        &self,
        networks: &Networks,
        caller: &Caller,
        id: &str,
    ) -> Result<Vec<String>, NeutronError>;
    /// Replace its tags (already validated, sorted, deduplicated); 404 if `caller` may not see it.
    async fn set_tags(
        &self,
        networks: &Networks,
        caller: &Caller,
        id: &str,
        tags: Vec<String>,
    ) -> Result<(), NeutronError>;
}

pub(super) fn register_core(_n: &Networks) {}

pub fn configure(_cfg: &mut web::ServiceConfig) {}
