//! `/v2.0/{collection}/{id}/tags` (list, replace, add one, check one, remove one, remove all) for any
//! resource kind that registers a [`TagResource`]: networks, subnets and ports here; routers, floating IPs
//! and security groups register theirs with [`Networks::register_tags`].

use std::sync::Arc;

use strata_actors::network::NetworkCommand;
use strata_actors::{Aggregate, Repository};

use super::{Caller, NetworkError, Networks};
use crate::input::check_tag;

/// A kind of resource whose tags `/v2.0/<collection>/{id}/tags` reads and replaces.
#[async_trait::async_trait]
pub trait TagResource: Send + Sync {
    /// The URL collection: "networks", "subnets", "ports", "routers", ...
    fn collection(&self) -> &str;
    /// The resource's tags, if `caller` may see it (404 otherwise).
    async fn tags(
        &self,
        networks: &Networks,
        caller: &Caller,
        id: &str,
    ) -> Result<Vec<String>, NetworkError>;
    /// Replace its tags (already validated, sorted, deduplicated); 404 if `caller` may not see it.
    async fn set_tags(
        &self,
        networks: &Networks,
        caller: &Caller,
        id: &str,
        tags: Vec<String>,
    ) -> Result<(), NetworkError>;
}

/// A resource whose tags live on its own stream (ports, routers, floating IPs, security groups): how to
/// find its tags for a caller (404 when it may not see it) and which command replaces them.
pub struct StreamTags<A: Aggregate> {
    pub collection: &'static str,
    pub find: fn(&Networks, &Caller, &str) -> Result<Vec<String>, NetworkError>,
    pub repo: fn(&Networks) -> &Repository<A>,
    pub command: fn(Vec<String>) -> A::Command,
}

#[async_trait::async_trait]
impl<A: Aggregate> TagResource for StreamTags<A> {
    fn collection(&self) -> &str {
        self.collection
    }

    async fn tags(
        &self,
        networks: &Networks,
        caller: &Caller,
        id: &str,
    ) -> Result<Vec<String>, NetworkError> {
        (self.find)(networks, caller, id)
    }

    async fn set_tags(
        &self,
        networks: &Networks,
        caller: &Caller,
        id: &str,
        tags: Vec<String>,
    ) -> Result<(), NetworkError> {
        (self.find)(networks, caller, id)?;
        networks
            .run(
                (self.repo)(networks),
                id,
                (self.command)(tags),
                &caller.meta,
            )
            .await?;
        Ok(())
    }
}

pub struct NetworkTags;

#[async_trait::async_trait]
impl TagResource for NetworkTags {
    fn collection(&self) -> &str {
        "networks"
    }

    async fn tags(
        &self,
        networks: &Networks,
        caller: &Caller,
        id: &str,
    ) -> Result<Vec<String>, NetworkError> {
        Ok(super::networks::find(networks, caller, id)?.state.tags)
    }

    async fn set_tags(
        &self,
        networks: &Networks,
        caller: &Caller,
        id: &str,
        tags: Vec<String>,
    ) -> Result<(), NetworkError> {
        super::networks::owned(networks, caller, id, "update_network:tags")?;
        networks
            .run(
                &networks.networks,
                id,
                NetworkCommand::SetTags(tags),
                &caller.meta,
            )
            .await?;
        Ok(())
    }
}

pub fn register_core(n: &Networks) {
    n.register_tags(Arc::new(NetworkTags));
    n.register_tags(Arc::new(super::subnets::SubnetTags));
    n.register_tags(Arc::new(super::ports::port_tags()));
}

pub fn normalized(mut tags: Vec<String>) -> Result<Vec<String>, NetworkError> {
    for t in &tags {
        check_tag(t)?;
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}
