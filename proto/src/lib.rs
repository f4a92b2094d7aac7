//! strata-proto: the protobuf schemas of every event Strata records, and their prost-generated Rust types.
//!
//! This crate holds data definitions only: no I/O, no logic, no dependency on any other Strata crate.
//! The schemas live in `schemas/`; the rules for changing them are in `README.md`, and
//! `tests/fingerprint.rs` fails when a schema changes without its fingerprint being updated.

/// The event envelope, snapshots and projection checkpoints.
pub mod envelope {
    include!(concat!(env!("OUT_DIR"), "/strata.envelope.v1.rs"));
}

/// Identity (Keystone) events.
pub mod identity {
    include!(concat!(env!("OUT_DIR"), "/strata.identity.v1.rs"));
}

/// Image (Glance) events.
pub mod image {
    include!(concat!(env!("OUT_DIR"), "/strata.image.v1.rs"));
}

/// Compute (Nova) events.
pub mod compute {
    include!(concat!(env!("OUT_DIR"), "/strata.compute.v1.rs"));
}

/// Block storage (Cinder) events.
pub mod volume {
    include!(concat!(env!("OUT_DIR"), "/strata.volume.v1.rs"));
}

/// Networking (Neutron) events.
pub mod network {
    include!(concat!(env!("OUT_DIR"), "/strata.network.v1.rs"));
}

/// Object storage (Swift) events.
pub mod object {
    include!(concat!(env!("OUT_DIR"), "/strata.object.v1.rs"));
}

pub use prost::Message;

pub mod codec;

/// Every identity event as one enum (variant = protobuf message, type name `identity.<Message>.v1`).
pub mod identity_events {
    use crate::identity;
    crate::domain_events!(IdentityEvent, "identity", identity, {
        DomainCreated, DomainUpdated, DomainDeleted,
        ProjectCreated, ProjectUpdated, ProjectDeleted,
        UserCreated, UserUpdated, UserPasswordChanged, UserDeleted,
        RoleCreated, RoleUpdated, RoleDeleted, RoleImplicationAdded, RoleImplicationRemoved,
        RoleGranted, RoleRevoked,
        ServiceCreated, ServiceUpdated, ServiceDeleted,
        EndpointCreated, EndpointUpdated, EndpointDeleted,
        RegionCreated, RegionUpdated, RegionDeleted,
        TokenRevoked, NameClaimed, NameReleased,
    });
}
pub use identity_events::IdentityEvent;

/// Every image event as one enum (variant = protobuf message, type name `image.<Message>.v1`).
pub mod image_events {
    use crate::image;
    crate::domain_events!(ImageEvent, "image", image, {
        ImageCreated, ImageUpdated,
        ImageUploadStarted, ImageUploadAborted, ImageStaged, ImageImportStarted, ImageDataStored,
        ImageDeactivated, ImageReactivated, ImageDeleted,
        ImageMemberAdded, ImageMemberStatusChanged, ImageMemberRemoved,
        ImageSlotTaken, ImageBytesTaken, ImageSlotFreed,
    });
}
pub use image_events::ImageEvent;

/// Every compute event as one enum (variant = protobuf message, type name `compute.<Message>.v1`).
pub mod compute_events {
    use crate::compute;
    crate::domain_events!(ComputeEvent, "compute", compute, {
        FlavorCreated, FlavorDescriptionChanged, FlavorDeleted,
        FlavorExtraSpecsSet, FlavorExtraSpecUnset, FlavorAccessAdded, FlavorAccessRemoved,
        KeypairCreated, KeypairDeleted,
        ServerCreated, ServerScheduled, ServerSpawned, ServerTaskStarted, ServerTaskFinished,
        ServerPowerSynced, ServerFaulted, ServerTaskFailed, ServerRenamed, ServerDescriptionChanged,
        ServerMetadataSet, ServerMetadataItemDeleted, ServerLocked, ServerUnlocked,
        ServerMigrationStarted, ServerMigrationScheduled, ServerMigrationFinished,
        ServerResizeConfirmed, ServerResizeReverted, ServerMigrationFailed,
        ServerRebuilt, ServerShelved, ServerDeleted, ServerInterfaceAttached, ServerInterfaceDetached,
        HostRegistered, HostInventoryChanged, HostHeartbeat, HostClaimed, HostClaimReleased,
        HostServiceDisabled, HostServiceEnabled, HostForcedDownChanged,
        HostImageCached, HostImageCacheHit, HostImageEvicted,
        UsageReserved, UsageReleased, UsageCounted, QuotaLimitsSet, QuotaLimitsReset,
        ServerGroupCreated, ServerGroupMemberAdded, ServerGroupMemberRemoved, ServerGroupDeleted,
        AggregateCreated, AggregateUpdated, AggregateHostAdded, AggregateHostRemoved,
        AggregateMetadataChanged, AggregateDeleted, AggregateImagesCacheRequested,
        SequenceAdvanced,
    });
}
pub use compute_events::ComputeEvent;

/// Every block storage event as one enum (variant = protobuf message, type name `volume.<Message>.v1`).
pub mod volume_events {
    use crate::volume;
    crate::domain_events!(VolumeEvent, "volume", volume, {
        VolumeCreated, VolumeScheduled, VolumeMadeAvailable, VolumeFailed, VolumeTaskStarted,
        VolumeTaskFinished, VolumeExtended, VolumeRetyped, VolumeRenamed, VolumeDescriptionChanged,
        VolumeMetadataSet, VolumeMetadataItemDeleted, VolumeBootableSet, VolumeReadonlySet,
        VolumeStatusReset, VolumeAttachmentCreated, VolumeAttachmentCompleted, VolumeAttachmentDeleted,
        VolumeAttachmentMoved, VolumeDetachingStarted, VolumeDetachingRolledBack,
        VolumeDeleted,
        SnapshotCreated, SnapshotMadeAvailable, SnapshotFailed, SnapshotDeleting, SnapshotUpdated,
        SnapshotMetadataSet, SnapshotDeleted,
        VolumeTypeCreated, VolumeTypeUpdated, VolumeTypeExtraSpecsSet, VolumeTypeExtraSpecUnset,
        VolumeTypeAccessAdded, VolumeTypeAccessRemoved, VolumeTypeDeleted,
        BackupCreated, BackupMadeAvailable, BackupFailed, BackupTaskStarted, BackupTaskFinished,
        BackupDeleted, BackupUpdated, BackupStatusReset,
        BackendRegistered, BackendStatsReported, BackendHeartbeat, BackendClaimed, BackendClaimReleased,
        BackendDisabled, BackendEnabled,
        VolumeUsageReserved, VolumeUsageReleased, VolumeQuotaLimitsSet, VolumeQuotaLimitsReset,
    });
}
pub use volume_events::VolumeEvent;

/// Every networking event as one enum (variant = protobuf message, type name `network.<Message>.v1`).
pub mod network_events {
    use crate::network;
    crate::domain_events!(NetworkEvent, "network", network, {
        NetworkCreated, NetworkUpdated, NetworkDeleted,
        SubnetAdded, SubnetUpdated, SubnetTagsSet, SubnetRemoved,
        NetworkPortAllocated, NetworkPortReallocated, NetworkPortOwnerChanged, NetworkPortReleased,
        PortCreated, PortUpdated, PortFixedIpsChanged, PortBindingChanged, PortDeleted,
        TagsSet,
        NetworkUsageReserved, NetworkUsageReleased, NetworkQuotaLimitsSet, NetworkQuotaLimitsReset,
        SecurityGroupCreated, SecurityGroupUpdated, SecurityGroupRuleAdded, SecurityGroupRuleRemoved,
        SecurityGroupDeleted,
        RouterCreated, RouterUpdated, RouterGatewaySet, RouterGatewayCleared, RouterInterfaceAdded,
        RouterInterfaceRemoved, RouterRoutesSet, RouterDeleted,
        FloatingIpCreated, FloatingIpAssociated, FloatingIpDisassociated, FloatingIpUpdated,
        FloatingIpStatusChanged, FloatingIpDeleted,
    });
}
pub use network_events::NetworkEvent;

/// Every object storage event as one enum (variant = protobuf message, type name `object.<Message>.v1`).
pub mod object_events {
    use crate::object;
    crate::domain_events!(ObjectEvent, "object", object, {
        AccountHeadersChanged, ContainerCreated, ContainerHeadersChanged, ContainerDeleted,
        ObjectStored, ObjectHeadersReplaced, ObjectDeleted,
    });
}
pub use object_events::ObjectEvent;
