//! `Image`: a Glance image record, its data status, and its members (projects it is shared with).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use strata_proto::image as pb;
use strata_proto::ImageEvent as E;

use super::{
    check_container_format, check_disk_format, check_id, check_len, check_member_status,
    check_properties, check_visibility, invalid, normalize_tags, parse_properties, properties_json,
    ID_MAX, NAME_MAX,
};
use crate::aggregate::{Aggregate, DomainError};

const KIND: &str = "image";

/// Glance's image statuses (`killed` and `pending_delete` are never entered here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageStatus {
    /// A record without data.
    #[default]
    Queued,
    /// Data is being uploaded (`PUT /file`).
    Saving,
    /// Data is staged for an import (`PUT /stage`).
    Uploading,
    /// An import is running (`POST /import`).
    Importing,
    Active,
    Deactivated,
    Deleted,
}

impl ImageStatus {
    /// The status as Glance spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageStatus::Queued => "queued",
            ImageStatus::Saving => "saving",
            ImageStatus::Uploading => "uploading",
            ImageStatus::Importing => "importing",
            ImageStatus::Active => "active",
            ImageStatus::Deactivated => "deactivated",
            ImageStatus::Deleted => "deleted",
        }
    }
}

impl fmt::Display for ImageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub exists: bool,
    pub deleted: bool,
    pub image_id: String,
    /// Project id of the owner ("" = none).
    pub owner: String,
    pub name: String,
    /// "" until set.
    pub disk_format: String,
    /// "" until set.
    pub container_format: String,
    pub visibility: String,
    pub min_disk: u64,
    pub min_ram: u64,
    pub protected: bool,
    pub os_hidden: bool,
    /// In the order given, without repeats.
    pub tags: Vec<String>,
    /// Extra (user-defined) properties.
    pub properties: BTreeMap<String, serde_json::Value>,
    pub status: ImageStatus,
    /// Bytes of data: `None` until data is staged or stored.
    pub size: Option<u64>,
    /// MD5 of the data, hex ("" until stored).
    pub checksum: String,
    pub os_hash_algo: String,
    pub os_hash_value: String,
    pub virtual_size: Option<u64>,
    /// Backend store id ("" until stored).
    pub store: String,
    /// Location of the data in its store ("" until stored).
    pub location: String,
    /// member (project) id -> pending | accepted | rejected.
    pub members: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ImageCommand {
    Create {
        image_id: String,
        owner: String,
        name: String,
        disk_format: String,
        container_format: String,
        visibility: String,
        min_disk: u64,
        min_ram: u64,
        protected: bool,
        os_hidden: bool,
        tags: Vec<String>,
        properties: BTreeMap<String, serde_json::Value>,
    },
    /// Change the given fields; `None` leaves a field as it is; `tags` and `properties` replace the whole
    /// list/object.
    Update {
        name: Option<String>,
        disk_format: Option<String>,
        container_format: Option<String>,
        visibility: Option<String>,
        min_disk: Option<u64>,
        min_ram: Option<u64>,
        protected: Option<bool>,
        os_hidden: Option<bool>,
        tags: Option<Vec<String>>,
        properties: Option<BTreeMap<String, serde_json::Value>>,
    },
    /// `PUT /file` begins: queued -> saving.
    StartUpload,
    /// An upload, stage or import failed: saving | uploading | importing -> queued (no-op otherwise).
    AbortUpload {
        reason: String,
    },
    /// `PUT /stage` stored the data in staging: queued -> uploading.
    Stage {
        size: u64,
    },
    /// `POST /import`: uploading -> importing (glance-direct), queued -> importing (other methods).
    StartImport {
        method: String,
    },
    /// The data is in its store: saving | importing -> active.
    StoreData {
        size: u64,
        checksum: String,
        os_hash_algo: String,
        os_hash_value: String,
        virtual_size: Option<u64>,
        store: String,
        location: String,
    },
    Deactivate,
    Reactivate,
    Delete,
    AddMember {
        member_id: String,
    },
    SetMemberStatus {
        member_id: String,
        status: String,
    },
    RemoveMember {
        member_id: String,
    },
}

/// `Some(new)` when `new` differs from `current`, so update events carry only real changes.
fn changed<T: PartialEq + Clone>(current: &T, new: &Option<T>) -> Option<T> {
    match new {
        Some(v) if v != current => Some(v.clone()),
        _ => None,
    }
}

fn set<T: Clone>(field: &mut T, value: &Option<T>) {
    if let Some(v) = value {
        *field = v.clone();
    }
}

fn transition(from: ImageStatus, to: &str) -> DomainError {
    DomainError::Conflict(format!(
        "Image status transition from {from} to {to} is not allowed"
    ))
}

impl Image {
    fn live(&self) -> Result<(), DomainError> {
        if self.exists && !self.deleted {
            Ok(())
        } else {
            Err(DomainError::NotFound {
                kind: KIND,
                id: self.image_id.clone(),
            })
        }
    }

    /// Glance: "Only shared images have members." (every member operation on another visibility is 403).
    fn shared(&self) -> Result<(), DomainError> {
        if self.visibility == "shared" {
            Ok(())
        } else {
            Err(DomainError::Forbidden(
                "Only shared images have members.".into(),
            ))
        }
    }

    fn member(&self, member_id: &str) -> Result<&String, DomainError> {
        self.members
            .get(member_id)
            .ok_or_else(|| DomainError::NotFound {
                kind: "member",
                id: member_id.to_string(),
            })
    }

    fn check_member_id(member_id: &str) -> Result<(), DomainError> {
        check_id("member", member_id, NAME_MAX)
    }

    /// Formats may change only while there is no data (Glance's wording).
    fn check_format_change(
        &self,
        attribute: &str,
        change: &Option<String>,
    ) -> Result<(), DomainError> {
        if change.is_some() && self.status != ImageStatus::Queued {
            return Err(DomainError::Forbidden(format!(
                "Attribute {attribute} can be only replaced for a queued image."
            )));
        }
        Ok(())
    }

    fn decide_update(&self, cmd: &ImageCommand) -> Result<Vec<E>, DomainError> {
        let ImageCommand::Update {
            name,
            disk_format,
            container_format,
            visibility,
            min_disk,
            min_ram,
            protected,
            os_hidden,
            tags,
            properties,
        } = cmd
        else {
            unreachable!("decide_update is called with Update only")
        };
        self.live()?;
        if let Some(n) = name {
            check_len("name", n, NAME_MAX)?;
        }
        if let Some(f) = disk_format {
            check_disk_format(f)?;
        }
        if let Some(f) = container_format {
            check_container_format(f)?;
        }
        if let Some(v) = visibility {
            check_visibility(v)?;
        }
        let tags = tags.as_deref().map(normalize_tags).transpose()?;
        if let Some(p) = properties {
            check_properties(p)?;
        }
        let disk_format = changed(&self.disk_format, disk_format);
        let container_format = changed(&self.container_format, container_format);
        self.check_format_change("disk_format", &disk_format)?;
        self.check_format_change("container_format", &container_format)?;
        let new_tags = changed(&self.tags, &tags);
        let update = pb::ImageUpdated {
            name: changed(&self.name, name),
            disk_format,
            container_format,
            visibility: changed(&self.visibility, visibility),
            min_disk: changed(&self.min_disk, min_disk),
            min_ram: changed(&self.min_ram, min_ram),
            protected: changed(&self.protected, protected),
            os_hidden: changed(&self.os_hidden, os_hidden),
            tags_changed: new_tags.is_some(),
            tags: new_tags.unwrap_or_default(),
            properties_json: changed(&self.properties, properties).map(|p| properties_json(&p)),
        };
        if update == pb::ImageUpdated::default() {
            return Ok(vec![]);
        }
        Ok(vec![E::ImageUpdated(update)])
    }

    fn decide_import(&self, method: &str) -> Result<Vec<E>, DomainError> {
        self.live()?;
        if method.is_empty() {
            return Err(invalid("method", "must not be empty"));
        }
        if self.status == ImageStatus::Active {
            return Err(DomainError::Conflict(
                "Image with status active cannot be target for import".into(),
            ));
        }
        if method == "glance-direct" {
            if self.status != ImageStatus::Uploading {
                return Err(DomainError::Conflict(
                    "Image needs to be staged before 'glance-direct' method can be used".into(),
                ));
            }
        } else if self.status != ImageStatus::Queued {
            return Err(DomainError::Conflict(format!(
                "Image needs to be in 'queued' state to use '{method}' method"
            )));
        }
        if self.container_format.is_empty() {
            return Err(DomainError::Conflict(
                "'container_format' needs to be set before import".into(),
            ));
        }
        if self.disk_format.is_empty() {
            return Err(DomainError::Conflict(
                "'disk_format' needs to be set before import".into(),
            ));
        }
        Ok(vec![E::ImageImportStarted(pb::ImageImportStarted {
            method: method.to_string(),
        })])
    }

    /// Forget any data received so far.
    fn discard_data(&mut self) {
        self.size = None;
        self.checksum.clear();
        self.os_hash_algo.clear();
        self.os_hash_value.clear();
        self.virtual_size = None;
        self.store.clear();
        self.location.clear();
    }
}

impl Aggregate for Image {
    type Command = ImageCommand;
    type Event = E;
    const KIND: &'static str = KIND;

    fn decide(&self, cmd: &ImageCommand) -> Result<Vec<E>, DomainError> {
        use ImageStatus::*;
        match cmd {
            ImageCommand::Create {
                image_id,
                owner,
                name,
                disk_format,
                container_format,
                visibility,
                min_disk,
                min_ram,
                protected,
                os_hidden,
                tags,
                properties,
            } => {
                check_id("id", image_id, ID_MAX)?;
                check_len("owner", owner, NAME_MAX)?;
                check_len("name", name, NAME_MAX)?;
                check_disk_format(disk_format)?;
                check_container_format(container_format)?;
                check_visibility(visibility)?;
                let tags = normalize_tags(tags)?;
                check_properties(properties)?;
                if self.exists {
                    return Err(DomainError::AlreadyExists {
                        kind: KIND,
                        detail: format!("Image with identifier {image_id} already exists!"),
                    });
                }
                Ok(vec![E::ImageCreated(pb::ImageCreated {
                    image_id: image_id.clone(),
                    owner: owner.clone(),
                    name: name.clone(),
                    disk_format: disk_format.clone(),
                    container_format: container_format.clone(),
                    visibility: visibility.clone(),
                    min_disk: *min_disk,
                    min_ram: *min_ram,
                    protected: *protected,
                    os_hidden: *os_hidden,
                    tags,
                    properties_json: properties_json(properties),
                })])
            }
            ImageCommand::Update { .. } => self.decide_update(cmd),
            ImageCommand::StartUpload => {
                self.live()?;
                if self.status != Queued {
                    return Err(transition(self.status, "saving"));
                }
                if self.disk_format.is_empty() || self.container_format.is_empty() {
                    return Err(DomainError::Invalid(
                        "Properties disk_format, container_format must be set prior to saving data."
                            .into(),
                    ));
                }
                Ok(vec![E::ImageUploadStarted(pb::ImageUploadStarted {})])
            }
            ImageCommand::AbortUpload { reason } => {
                self.live()?;
                match self.status {
                    Saving | Uploading | Importing => {
                        Ok(vec![E::ImageUploadAborted(pb::ImageUploadAborted {
                            reason: reason.clone(),
                        })])
                    }
                    _ => Ok(vec![]),
                }
            }
            ImageCommand::Stage { size } => {
                self.live()?;
                if self.status != Queued {
                    return Err(transition(self.status, "uploading"));
                }
                Ok(vec![E::ImageStaged(pb::ImageStaged { size: *size })])
            }
            ImageCommand::StartImport { method } => self.decide_import(method),
            ImageCommand::StoreData {
                size,
                checksum,
                os_hash_algo,
                os_hash_value,
                virtual_size,
                store,
                location,
            } => {
                self.live()?;
                if !matches!(self.status, Saving | Importing) {
                    return Err(transition(self.status, "active"));
                }
                Ok(vec![E::ImageDataStored(pb::ImageDataStored {
                    size: *size,
                    checksum: checksum.clone(),
                    os_hash_algo: os_hash_algo.clone(),
                    os_hash_value: os_hash_value.clone(),
                    virtual_size: *virtual_size,
                    store: store.clone(),
                    location: location.clone(),
                })])
            }
            ImageCommand::Deactivate => {
                self.live()?;
                match self.status {
                    Active => Ok(vec![E::ImageDeactivated(pb::ImageDeactivated {})]),
                    Deactivated => Ok(vec![]),
                    other => Err(DomainError::Forbidden(format!(
                        "Not allowed to deactivate image in status '{other}'"
                    ))),
                }
            }
            ImageCommand::Reactivate => {
                self.live()?;
                match self.status {
                    Deactivated => Ok(vec![E::ImageReactivated(pb::ImageReactivated {})]),
                    Active => Ok(vec![]),
                    other => Err(DomainError::Forbidden(format!(
                        "Not allowed to reactivate image in status '{other}'"
                    ))),
                }
            }
            ImageCommand::Delete => {
                self.live()?;
                if self.protected {
                    return Err(DomainError::Forbidden(format!(
                        "Image {} is protected and cannot be deleted.",
                        self.image_id
                    )));
                }
                Ok(vec![E::ImageDeleted(pb::ImageDeleted {})])
            }
            ImageCommand::AddMember { member_id } => {
                self.live()?;
                Self::check_member_id(member_id)?;
                self.shared()?;
                if self.members.contains_key(member_id) {
                    return Err(DomainError::Conflict(format!(
                        "The target member {member_id} is already associated with image {}.",
                        self.image_id
                    )));
                }
                Ok(vec![E::ImageMemberAdded(pb::ImageMemberAdded {
                    member_id: member_id.clone(),
                })])
            }
            ImageCommand::SetMemberStatus { member_id, status } => {
                self.live()?;
                Self::check_member_id(member_id)?;
                check_member_status(status)?;
                self.shared()?;
                if self.member(member_id)? == status {
                    return Ok(vec![]);
                }
                Ok(vec![E::ImageMemberStatusChanged(
                    pb::ImageMemberStatusChanged {
                        member_id: member_id.clone(),
                        status: status.clone(),
                    },
                )])
            }
            ImageCommand::RemoveMember { member_id } => {
                self.live()?;
                Self::check_member_id(member_id)?;
                self.shared()?;
                self.member(member_id)?;
                Ok(vec![E::ImageMemberRemoved(pb::ImageMemberRemoved {
                    member_id: member_id.clone(),
                })])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::ImageCreated(c) => {
                self.exists = true;
                self.image_id = c.image_id.clone();
                self.owner = c.owner.clone();
                self.name = c.name.clone();
                self.disk_format = c.disk_format.clone();
                self.container_format = c.container_format.clone();
                self.visibility = c.visibility.clone();
                self.min_disk = c.min_disk;
                self.min_ram = c.min_ram;
                self.protected = c.protected;
                self.os_hidden = c.os_hidden;
                self.tags = c.tags.clone();
                self.properties = parse_properties(&c.properties_json);
                self.status = ImageStatus::Queued;
            }
            E::ImageUpdated(u) => {
                set(&mut self.name, &u.name);
                set(&mut self.disk_format, &u.disk_format);
                set(&mut self.container_format, &u.container_format);
                set(&mut self.visibility, &u.visibility);
                set(&mut self.min_disk, &u.min_disk);
                set(&mut self.min_ram, &u.min_ram);
                set(&mut self.protected, &u.protected);
                set(&mut self.os_hidden, &u.os_hidden);
                if u.tags_changed {
                    self.tags = u.tags.clone();
                }
                if let Some(p) = &u.properties_json {
                    self.properties = parse_properties(p);
                }
            }
            E::ImageUploadStarted(_) => self.status = ImageStatus::Saving,
            E::ImageUploadAborted(_) => {
                self.status = ImageStatus::Queued;
                self.discard_data();
            }
            E::ImageStaged(s) => {
                self.status = ImageStatus::Uploading;
                self.size = Some(s.size);
            }
            E::ImageImportStarted(_) => self.status = ImageStatus::Importing,
            E::ImageDataStored(d) => {
                self.status = ImageStatus::Active;
                self.size = Some(d.size);
                self.checksum = d.checksum.clone();
                self.os_hash_algo = d.os_hash_algo.clone();
                self.os_hash_value = d.os_hash_value.clone();
                self.virtual_size = d.virtual_size;
                self.store = d.store.clone();
                self.location = d.location.clone();
            }
            E::ImageDeactivated(_) => self.status = ImageStatus::Deactivated,
            E::ImageReactivated(_) => self.status = ImageStatus::Active,
            E::ImageDeleted(_) => {
                self.deleted = true;
                self.status = ImageStatus::Deleted;
            }
            E::ImageMemberAdded(m) => {
                self.members
                    .insert(m.member_id.clone(), "pending".to_string());
            }
            E::ImageMemberStatusChanged(m) => {
                if let Some(s) = self.members.get_mut(&m.member_id) {
                    *s = m.status.clone();
                }
            }
            E::ImageMemberRemoved(m) => {
                self.members.remove(&m.member_id);
            }
            // Quota events live on the project's usage stream, not on the image's.
            E::ImageSlotTaken(_) | E::ImageBytesTaken(_) | E::ImageSlotFreed(_) => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::aggregate::DomainEvent;
    use crate::gwt::{assert_round_trips, edit, given};
    use crate::image::{CONTAINER_FORMATS, DISK_FORMATS, MAX_TAGS};
    use serde_json::json;

    fn props() -> BTreeMap<String, serde_json::Value> {
        [("os_distro".to_string(), json!("cirros"))]
            .into_iter()
            .collect()
    }

    fn create() -> ImageCommand {
        ImageCommand::Create {
            image_id: "i1".into(),
            owner: "p1".into(),
            name: "cirros".into(),
            disk_format: "qcow2".into(),
            container_format: "bare".into(),
            visibility: "shared".into(),
            min_disk: 1,
            min_ram: 64,
            protected: false,
            os_hidden: false,
            tags: vec!["a".into()],
            properties: props(),
        }
    }

    fn created() -> E {
        E::ImageCreated(pb::ImageCreated {
            image_id: "i1".into(),
            owner: "p1".into(),
            name: "cirros".into(),
            disk_format: "qcow2".into(),
            container_format: "bare".into(),
            visibility: "shared".into(),
            min_disk: 1,
            min_ram: 64,
            protected: false,
            os_hidden: false,
            tags: vec!["a".into()],
            properties_json: r#"{"os_distro":"cirros"}"#.into(),
        })
    }

    /// An image created without formats (as `openstack image create` without `--disk-format` may).
    fn created_bare() -> E {
        E::ImageCreated(pb::ImageCreated {
            image_id: "i1".into(),
            owner: "p1".into(),
            visibility: "private".into(),
            ..Default::default()
        })
    }

    fn update() -> ImageCommand {
        ImageCommand::Update {
            name: None,
            disk_format: None,
            container_format: None,
            visibility: None,
            min_disk: None,
            min_ram: None,
            protected: None,
            os_hidden: None,
            tags: None,
            properties: None,
        }
    }

    fn with_update(edit: impl FnOnce(&mut ImageCommand)) -> ImageCommand {
        let mut cmd = update();
        edit(&mut cmd);
        cmd
    }

    fn upload_started() -> E {
        E::ImageUploadStarted(pb::ImageUploadStarted {})
    }

    fn staged() -> E {
        E::ImageStaged(pb::ImageStaged { size: 10 })
    }

    fn import_started(method: &str) -> E {
        E::ImageImportStarted(pb::ImageImportStarted {
            method: method.into(),
        })
    }

    fn store_data() -> ImageCommand {
        ImageCommand::StoreData {
            size: 10,
            checksum: "c".into(),
            os_hash_algo: "sha512".into(),
            os_hash_value: "h".into(),
            virtual_size: Some(20),
            store: "file".into(),
            location: "file:///data/i1".into(),
        }
    }

    fn data_stored() -> E {
        E::ImageDataStored(pb::ImageDataStored {
            size: 10,
            checksum: "c".into(),
            os_hash_algo: "sha512".into(),
            os_hash_value: "h".into(),
            virtual_size: Some(20),
            store: "file".into(),
            location: "file:///data/i1".into(),
        })
    }

    fn deactivated() -> E {
        E::ImageDeactivated(pb::ImageDeactivated {})
    }

    fn deleted() -> E {
        E::ImageDeleted(pb::ImageDeleted {})
    }

    fn member_added(m: &str) -> E {
        E::ImageMemberAdded(pb::ImageMemberAdded {
            member_id: m.into(),
        })
    }

    fn member_status(m: &str, s: &str) -> E {
        E::ImageMemberStatusChanged(pb::ImageMemberStatusChanged {
            member_id: m.into(),
            status: s.into(),
        })
    }

    /// Histories that leave the image in each live status.
    fn in_status(status: ImageStatus) -> Vec<E> {
        use ImageStatus::*;
        match status {
            Queued => vec![created()],
            Saving => vec![created(), upload_started()],
            Uploading => vec![created(), staged()],
            Importing => vec![created(), staged(), import_started("glance-direct")],
            Active => vec![created(), upload_started(), data_stored()],
            Deactivated => vec![created(), upload_started(), data_stored(), deactivated()],
            Deleted => vec![created(), deleted()],
        }
    }

    const LIVE: [ImageStatus; 6] = [
        ImageStatus::Queued,
        ImageStatus::Saving,
        ImageStatus::Uploading,
        ImageStatus::Importing,
        ImageStatus::Active,
        ImageStatus::Deactivated,
    ];

    #[test]
    fn create_records_the_image() {
        let state = given::<Image>([]).when(create()).then(vec![created()]);
        assert_eq!(
            state,
            Image {
                exists: true,
                deleted: false,
                image_id: "i1".into(),
                owner: "p1".into(),
                name: "cirros".into(),
                disk_format: "qcow2".into(),
                container_format: "bare".into(),
                visibility: "shared".into(),
                min_disk: 1,
                min_ram: 64,
                protected: false,
                os_hidden: false,
                tags: vec!["a".into()],
                properties: props(),
                status: ImageStatus::Queued,
                size: None,
                checksum: String::new(),
                os_hash_algo: String::new(),
                os_hash_value: String::new(),
                virtual_size: None,
                store: String::new(),
                location: String::new(),
                members: BTreeMap::new(),
            }
        );
    }

    #[test]
    fn create_without_formats_or_properties_is_allowed() {
        let cmd = ImageCommand::Create {
            image_id: "i1".into(),
            owner: "p1".into(),
            name: String::new(),
            disk_format: String::new(),
            container_format: String::new(),
            visibility: "private".into(),
            min_disk: 0,
            min_ram: 0,
            protected: false,
            os_hidden: false,
            tags: vec![],
            properties: BTreeMap::new(),
        };
        let state = given::<Image>([]).when(cmd).then(vec![created_bare()]);
        assert!(state.properties.is_empty());
        assert_eq!(state.status, ImageStatus::Queued);
    }

    #[test]
    fn create_drops_repeated_tags_keeping_order() {
        let mut cmd = create();
        if let ImageCommand::Create { tags, .. } = &mut cmd {
            *tags = vec!["b".into(), "a".into(), "b".into()];
        }
        let state = given::<Image>([]).when(cmd).then_ok();
        assert_eq!(state.tags, vec!["b".to_string(), "a".to_string()]);
    }

    #[test]
    fn create_twice_or_after_delete_is_a_duplicate() {
        let dup = DomainError::AlreadyExists {
            kind: "image",
            detail: "Image with identifier i1 already exists!".into(),
        };
        given::<Image>([created()])
            .when(create())
            .then_err(dup.clone());
        given::<Image>([created(), deleted()])
            .when(create())
            .then_err(dup);
    }

    #[test]
    fn create_validates_its_input() {
        type Edit = fn(&mut ImageCommand);
        let edits: [Edit; 10] = [
            edit!(ImageCommand::Create { image_id } => image_id.clear()),
            edit!(ImageCommand::Create { image_id } => *image_id = "i".repeat(65)),
            edit!(ImageCommand::Create { owner } => *owner = "o".repeat(256)),
            edit!(ImageCommand::Create { name } => *name = "n".repeat(256)),
            edit!(ImageCommand::Create { disk_format } => *disk_format = "bare".into()),
            |c| {
                if let ImageCommand::Create {
                    container_format, ..
                } = c
                {
                    *container_format = "qcow2".into()
                }
            },
            edit!(ImageCommand::Create { visibility } => *visibility = "everyone".into()),
            edit!(ImageCommand::Create { tags } => *tags = vec!["t".repeat(256)]),
            edit!(ImageCommand::Create { tags } => *tags = (0..=MAX_TAGS).map(|i| i.to_string()).collect()),
            edit!(ImageCommand::Create { properties } => properties.insert("k".repeat(256), json!("v"))),
        ];
        for edit in edits {
            let mut cmd = create();
            edit(&mut cmd);
            given::<Image>([]).when(cmd).then_invalid();
        }
        // The limits themselves are accepted.
        let mut cmd = create();
        if let ImageCommand::Create { name, tags, .. } = &mut cmd {
            *name = "é".repeat(255);
            *tags = (0..MAX_TAGS).map(|i| i.to_string()).collect();
        }
        given::<Image>([]).when(cmd).then_ok();
    }

    #[test]
    fn every_glance_format_is_accepted() {
        for f in DISK_FORMATS {
            let mut cmd = create();
            if let ImageCommand::Create { disk_format, .. } = &mut cmd {
                *disk_format = f.to_string();
            }
            assert!(Image::default().decide(&cmd).is_ok(), "{f}");
        }
        for f in CONTAINER_FORMATS {
            let mut cmd = create();
            if let ImageCommand::Create {
                container_format, ..
            } = &mut cmd
            {
                *container_format = f.to_string();
            }
            assert!(Image::default().decide(&cmd).is_ok(), "{f}");
        }
    }

    #[test]
    fn update_records_only_what_changed() {
        let mut new_props = props();
        new_props.insert("hw_disk_bus".into(), json!("scsi"));
        let cmd = ImageCommand::Update {
            name: Some("cirros2".into()),
            disk_format: Some("qcow2".into()),
            container_format: Some("ovf".into()),
            visibility: Some("public".into()),
            min_disk: Some(1),
            min_ram: Some(128),
            protected: Some(true),
            os_hidden: Some(true),
            tags: Some(vec!["a".into(), "b".into(), "a".into()]),
            properties: Some(new_props.clone()),
        };
        let state = given::<Image>([created()])
            .when(cmd)
            .then(vec![E::ImageUpdated(pb::ImageUpdated {
                name: Some("cirros2".into()),
                container_format: Some("ovf".into()),
                visibility: Some("public".into()),
                min_ram: Some(128),
                protected: Some(true),
                os_hidden: Some(true),
                tags_changed: true,
                tags: vec!["a".into(), "b".into()],
                properties_json: Some(r#"{"hw_disk_bus":"scsi","os_distro":"cirros"}"#.into()),
                ..Default::default()
            })]);
        assert_eq!(state.name, "cirros2");
        assert_eq!(state.container_format, "ovf");
        assert_eq!(state.visibility, "public");
        assert_eq!((state.min_disk, state.min_ram), (1, 128));
        assert!(state.protected && state.os_hidden);
        assert_eq!(state.tags, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(state.properties, new_props);
    }

    #[test]
    fn clearing_tags_and_properties_is_a_change() {
        let cmd = with_update(|c| {
            if let ImageCommand::Update {
                tags, properties, ..
            } = c
            {
                *tags = Some(vec![]);
                *properties = Some(BTreeMap::new());
            }
        });
        let state = given::<Image>([created()])
            .when(cmd)
            .then(vec![E::ImageUpdated(pb::ImageUpdated {
                tags_changed: true,
                tags: vec![],
                properties_json: Some(String::new()),
                ..Default::default()
            })]);
        assert!(state.tags.is_empty());
        assert!(state.properties.is_empty());
    }

    #[test]
    fn update_that_changes_nothing_records_nothing() {
        given::<Image>([created()]).when(update()).then_nothing();
        let same = ImageCommand::Update {
            name: Some("cirros".into()),
            disk_format: Some("qcow2".into()),
            container_format: Some("bare".into()),
            visibility: Some("shared".into()),
            min_disk: Some(1),
            min_ram: Some(64),
            protected: Some(false),
            os_hidden: Some(false),
            tags: Some(vec!["a".into(), "a".into()]),
            properties: Some(props()),
        };
        // Unchanged formats are fine even once the image has data.
        given::<Image>(in_status(ImageStatus::Active))
            .when(same.clone())
            .then_nothing();
        given::<Image>([created()]).when(same).then_nothing();
    }

    #[test]
    fn update_validates_its_input() {
        let bad = [
            with_update(edit!(ImageCommand::Update { name } => *name = Some("n".repeat(256)))),
            with_update(
                edit!(ImageCommand::Update { disk_format } => *disk_format = Some("tar".into())),
            ),
            with_update(
                edit!(ImageCommand::Update { container_format } => *container_format = Some("tar".into())),
            ),
            with_update(
                edit!(ImageCommand::Update { visibility } => *visibility = Some("all".into())),
            ),
            with_update(
                edit!(ImageCommand::Update { tags } => *tags = Some(vec!["t".repeat(256)])),
            ),
            with_update(
                edit!(ImageCommand::Update { tags } => *tags = Some((0..=MAX_TAGS).map(|i| i.to_string()).collect())),
            ),
            with_update(
                edit!(ImageCommand::Update { properties } => *properties = Some([(String::new(), json!(1))].into_iter().collect())),
            ),
        ];
        for cmd in bad {
            given::<Image>([created()]).when(cmd).then_invalid();
        }
    }

    #[test]
    fn formats_can_be_replaced_only_while_queued() {
        let disk = with_update(
            edit!(ImageCommand::Update { disk_format } => *disk_format = Some("raw".into())),
        );
        let container = with_update(
            edit!(ImageCommand::Update { container_format } => *container_format = Some("ovf".into())),
        );
        let state = given::<Image>([created()])
            .when(disk.clone())
            .then(vec![E::ImageUpdated(pb::ImageUpdated {
                disk_format: Some("raw".into()),
                ..Default::default()
            })]);
        assert_eq!(state.disk_format, "raw");
        for status in LIVE.into_iter().filter(|s| *s != ImageStatus::Queued) {
            given::<Image>(in_status(status))
                .when(disk.clone())
                .then_err(DomainError::Forbidden(
                    "Attribute disk_format can be only replaced for a queued image.".into(),
                ));
            given::<Image>(in_status(status))
                .when(container.clone())
                .then_err(DomainError::Forbidden(
                    "Attribute container_format can be only replaced for a queued image.".into(),
                ));
        }
    }

    #[test]
    fn active_images_accept_metadata_updates() {
        let cmd = ImageCommand::Update {
            name: Some("renamed".into()),
            disk_format: None,
            container_format: None,
            visibility: Some("public".into()),
            min_disk: Some(2),
            min_ram: Some(256),
            protected: Some(true),
            os_hidden: Some(true),
            tags: Some(vec!["x".into()]),
            properties: Some(BTreeMap::new()),
        };
        let state = given::<Image>(in_status(ImageStatus::Active))
            .when(cmd)
            .then(vec![E::ImageUpdated(pb::ImageUpdated {
                name: Some("renamed".into()),
                visibility: Some("public".into()),
                min_disk: Some(2),
                min_ram: Some(256),
                protected: Some(true),
                os_hidden: Some(true),
                tags_changed: true,
                tags: vec!["x".into()],
                properties_json: Some(String::new()),
                ..Default::default()
            })]);
        assert_eq!(state.status, ImageStatus::Active);
        assert_eq!(state.size, Some(10));
    }

    #[test]
    fn upload_goes_queued_saving_active() {
        let state = given::<Image>([created()])
            .when(ImageCommand::StartUpload)
            .then(vec![upload_started()]);
        assert_eq!(state.status, ImageStatus::Saving);
        let state = given::<Image>([created(), upload_started()])
            .when(store_data())
            .then(vec![data_stored()]);
        assert_eq!(state.status, ImageStatus::Active);
        assert_eq!(state.size, Some(10));
        assert_eq!(state.checksum, "c");
        assert_eq!(
            (state.os_hash_algo.as_str(), state.os_hash_value.as_str()),
            ("sha512", "h")
        );
        assert_eq!(state.virtual_size, Some(20));
        assert_eq!(
            (state.store.as_str(), state.location.as_str()),
            ("file", "file:///data/i1")
        );
    }

    #[test]
    fn upload_starts_only_from_queued() {
        for status in LIVE.into_iter().filter(|s| *s != ImageStatus::Queued) {
            given::<Image>(in_status(status))
                .when(ImageCommand::StartUpload)
                .then_err(DomainError::Conflict(format!(
                    "Image status transition from {status} to saving is not allowed"
                )));
        }
    }

    #[test]
    fn upload_needs_both_formats() {
        given::<Image>([created_bare()])
            .when(ImageCommand::StartUpload)
            .then_err(DomainError::Invalid(
                "Properties disk_format, container_format must be set prior to saving data.".into(),
            ));
        let only_disk = E::ImageUpdated(pb::ImageUpdated {
            disk_format: Some("raw".into()),
            ..Default::default()
        });
        given::<Image>([created_bare(), only_disk.clone()])
            .when(ImageCommand::StartUpload)
            .then_invalid();
        let container = E::ImageUpdated(pb::ImageUpdated {
            container_format: Some("bare".into()),
            ..Default::default()
        });
        given::<Image>([created_bare(), only_disk, container])
            .when(ImageCommand::StartUpload)
            .then(vec![upload_started()]);
    }

    #[test]
    fn staging_goes_queued_to_uploading() {
        let state = given::<Image>([created()])
            .when(ImageCommand::Stage { size: 10 })
            .then(vec![staged()]);
        assert_eq!(state.status, ImageStatus::Uploading);
        assert_eq!(state.size, Some(10));
        for status in LIVE.into_iter().filter(|s| *s != ImageStatus::Queued) {
            given::<Image>(in_status(status))
                .when(ImageCommand::Stage { size: 1 })
                .then_err(DomainError::Conflict(format!(
                    "Image status transition from {status} to uploading is not allowed"
                )));
        }
    }

    #[test]
    fn glance_direct_import_needs_staged_data() {
        let cmd = ImageCommand::StartImport {
            method: "glance-direct".into(),
        };
        let state = given::<Image>([created(), staged()])
            .when(cmd.clone())
            .then(vec![import_started("glance-direct")]);
        assert_eq!(state.status, ImageStatus::Importing);
        let state = given::<Image>(in_status(ImageStatus::Importing))
            .when(store_data())
            .then(vec![data_stored()]);
        assert_eq!(state.status, ImageStatus::Active);
        for status in [
            ImageStatus::Queued,
            ImageStatus::Saving,
            ImageStatus::Importing,
            ImageStatus::Deactivated,
        ] {
            given::<Image>(in_status(status))
                .when(cmd.clone())
                .then_err(DomainError::Conflict(
                    "Image needs to be staged before 'glance-direct' method can be used".into(),
                ));
        }
        given::<Image>(in_status(ImageStatus::Active))
            .when(cmd)
            .then_err(DomainError::Conflict(
                "Image with status active cannot be target for import".into(),
            ));
    }

    #[test]
    fn web_download_import_starts_from_queued() {
        let cmd = ImageCommand::StartImport {
            method: "web-download".into(),
        };
        let state = given::<Image>([created()])
            .when(cmd.clone())
            .then(vec![import_started("web-download")]);
        assert_eq!(state.status, ImageStatus::Importing);
        for status in [
            ImageStatus::Saving,
            ImageStatus::Uploading,
            ImageStatus::Importing,
            ImageStatus::Deactivated,
        ] {
            given::<Image>(in_status(status))
                .when(cmd.clone())
                .then_err(DomainError::Conflict(
                    "Image needs to be in 'queued' state to use 'web-download' method".into(),
                ));
        }
        given::<Image>(in_status(ImageStatus::Active))
            .when(cmd)
            .then_conflict();
        given::<Image>([created()])
            .when(ImageCommand::StartImport {
                method: String::new(),
            })
            .then_invalid();
    }

    #[test]
    fn import_needs_both_formats() {
        let cmd = ImageCommand::StartImport {
            method: "web-download".into(),
        };
        given::<Image>([created_bare()])
            .when(cmd.clone())
            .then_err(DomainError::Conflict(
                "'container_format' needs to be set before import".into(),
            ));
        let container = E::ImageUpdated(pb::ImageUpdated {
            container_format: Some("bare".into()),
            ..Default::default()
        });
        given::<Image>([created_bare(), container])
            .when(cmd)
            .then_err(DomainError::Conflict(
                "'disk_format' needs to be set before import".into(),
            ));
    }

    #[test]
    fn data_is_stored_only_while_saving_or_importing() {
        for status in [
            ImageStatus::Queued,
            ImageStatus::Uploading,
            ImageStatus::Active,
            ImageStatus::Deactivated,
        ] {
            given::<Image>(in_status(status))
                .when(store_data())
                .then_err(DomainError::Conflict(format!(
                    "Image status transition from {status} to active is not allowed"
                )));
        }
    }

    #[test]
    fn abort_returns_to_queued_and_discards_data() {
        let abort = ImageCommand::AbortUpload {
            reason: "client went away".into(),
        };
        let aborted = E::ImageUploadAborted(pb::ImageUploadAborted {
            reason: "client went away".into(),
        });
        for status in [
            ImageStatus::Saving,
            ImageStatus::Uploading,
            ImageStatus::Importing,
        ] {
            let state = given::<Image>(in_status(status))
                .when(abort.clone())
                .then(vec![aborted.clone()]);
            assert_eq!(state.status, ImageStatus::Queued);
            assert_eq!(state.size, None);
            // A new upload may start again.
            given::<Image>(
                in_status(status)
                    .into_iter()
                    .chain([aborted.clone()])
                    .collect::<Vec<_>>(),
            )
            .when(ImageCommand::StartUpload)
            .then(vec![upload_started()]);
        }
        for status in [
            ImageStatus::Queued,
            ImageStatus::Active,
            ImageStatus::Deactivated,
        ] {
            let before = given::<Image>(in_status(status)).0;
            let after = given::<Image>(in_status(status))
                .when(abort.clone())
                .then_nothing();
            assert_eq!(after, before);
        }
    }

    #[test]
    fn deactivate_and_reactivate() {
        let state = given::<Image>(in_status(ImageStatus::Active))
            .when(ImageCommand::Deactivate)
            .then(vec![deactivated()]);
        assert_eq!(state.status, ImageStatus::Deactivated);
        given::<Image>(in_status(ImageStatus::Deactivated))
            .when(ImageCommand::Deactivate)
            .then_nothing();
        let state = given::<Image>(in_status(ImageStatus::Deactivated))
            .when(ImageCommand::Reactivate)
            .then(vec![E::ImageReactivated(pb::ImageReactivated {})]);
        assert_eq!(state.status, ImageStatus::Active);
        given::<Image>(in_status(ImageStatus::Active))
            .when(ImageCommand::Reactivate)
            .then_nothing();
        for status in [
            ImageStatus::Queued,
            ImageStatus::Saving,
            ImageStatus::Uploading,
            ImageStatus::Importing,
        ] {
            given::<Image>(in_status(status))
                .when(ImageCommand::Deactivate)
                .then_err(DomainError::Forbidden(format!(
                    "Not allowed to deactivate image in status '{status}'"
                )));
            given::<Image>(in_status(status))
                .when(ImageCommand::Reactivate)
                .then_err(DomainError::Forbidden(format!(
                    "Not allowed to reactivate image in status '{status}'"
                )));
        }
    }

    #[test]
    fn delete_marks_the_image_deleted_in_any_live_status() {
        for status in LIVE {
            let state = given::<Image>(in_status(status))
                .when(ImageCommand::Delete)
                .then(vec![deleted()]);
            assert!(state.deleted);
            assert_eq!(state.status, ImageStatus::Deleted);
        }
    }

    #[test]
    fn protected_images_cannot_be_deleted() {
        let protect = E::ImageUpdated(pb::ImageUpdated {
            protected: Some(true),
            ..Default::default()
        });
        given::<Image>([created(), protect.clone()])
            .when(ImageCommand::Delete)
            .then_err(DomainError::Forbidden(
                "Image i1 is protected and cannot be deleted.".into(),
            ));
        let unprotect = E::ImageUpdated(pb::ImageUpdated {
            protected: Some(false),
            ..Default::default()
        });
        given::<Image>([created(), protect, unprotect])
            .when(ImageCommand::Delete)
            .then(vec![deleted()]);
    }

    fn every_command() -> Vec<ImageCommand> {
        vec![
            update(),
            ImageCommand::StartUpload,
            ImageCommand::AbortUpload { reason: "r".into() },
            ImageCommand::Stage { size: 1 },
            ImageCommand::StartImport {
                method: "web-download".into(),
            },
            store_data(),
            ImageCommand::Deactivate,
            ImageCommand::Reactivate,
            ImageCommand::Delete,
            ImageCommand::AddMember {
                member_id: "p2".into(),
            },
            ImageCommand::SetMemberStatus {
                member_id: "p2".into(),
                status: "accepted".into(),
            },
            ImageCommand::RemoveMember {
                member_id: "p2".into(),
            },
        ]
    }

    #[test]
    fn absent_or_deleted_images_are_not_found() {
        let absent = DomainError::NotFound {
            kind: "image",
            id: String::new(),
        };
        let gone = DomainError::NotFound {
            kind: "image",
            id: "i1".into(),
        };
        for cmd in every_command() {
            given::<Image>([])
                .when(cmd.clone())
                .then_err(absent.clone());
            given::<Image>([created(), member_added("p2"), deleted()])
                .when(cmd)
                .then_err(gone.clone());
        }
    }

    #[test]
    fn members_are_added_accepted_and_removed() {
        let state = given::<Image>([created()])
            .when(ImageCommand::AddMember {
                member_id: "p2".into(),
            })
            .then(vec![member_added("p2")]);
        assert_eq!(state.members["p2"], "pending");
        for s in ["accepted", "rejected", "pending"] {
            let expected = if s == "pending" {
                vec![]
            } else {
                vec![member_status("p2", s)]
            };
            let state = given::<Image>([created(), member_added("p2")])
                .when(ImageCommand::SetMemberStatus {
                    member_id: "p2".into(),
                    status: s.into(),
                })
                .then(expected);
            assert_eq!(state.members["p2"], s);
        }
        let state = given::<Image>([
            created(),
            member_added("p2"),
            member_status("p2", "accepted"),
        ])
        .when(ImageCommand::RemoveMember {
            member_id: "p2".into(),
        })
        .then(vec![E::ImageMemberRemoved(pb::ImageMemberRemoved {
            member_id: "p2".into(),
        })]);
        assert!(state.members.is_empty());
    }

    #[test]
    fn only_shared_images_have_members() {
        let private = E::ImageUpdated(pb::ImageUpdated {
            visibility: Some("private".into()),
            ..Default::default()
        });
        let forbidden = DomainError::Forbidden("Only shared images have members.".into());
        for v in ["private", "public", "community"] {
            let history = [
                created(),
                E::ImageUpdated(pb::ImageUpdated {
                    visibility: Some(v.into()),
                    ..Default::default()
                }),
            ];
            given::<Image>(history.clone())
                .when(ImageCommand::AddMember {
                    member_id: "p2".into(),
                })
                .then_err(forbidden.clone());
        }
        // Members of an image that stopped being shared are kept, but cannot be managed.
        let history = [created(), member_added("p2"), private];
        given::<Image>(history.clone())
            .when(ImageCommand::SetMemberStatus {
                member_id: "p2".into(),
                status: "accepted".into(),
            })
            .then_err(forbidden.clone());
        let state = given::<Image>(history.clone()).0;
        assert_eq!(state.members.len(), 1);
        given::<Image>(history)
            .when(ImageCommand::RemoveMember {
                member_id: "p2".into(),
            })
            .then_err(forbidden);
    }

    #[test]
    fn member_rules() {
        given::<Image>([created(), member_added("p2")])
            .when(ImageCommand::AddMember {
                member_id: "p2".into(),
            })
            .then_err(DomainError::Conflict(
                "The target member p2 is already associated with image i1.".into(),
            ));
        given::<Image>([created()])
            .when(ImageCommand::AddMember {
                member_id: String::new(),
            })
            .then_invalid();
        given::<Image>([created(), member_added("p2")])
            .when(ImageCommand::SetMemberStatus {
                member_id: "p2".into(),
                status: "maybe".into(),
            })
            .then_invalid();
        let unknown = DomainError::NotFound {
            kind: "member",
            id: "p3".into(),
        };
        given::<Image>([created(), member_added("p2")])
            .when(ImageCommand::SetMemberStatus {
                member_id: "p3".into(),
                status: "accepted".into(),
            })
            .then_err(unknown.clone());
        given::<Image>([created(), member_added("p2")])
            .when(ImageCommand::RemoveMember {
                member_id: "p3".into(),
            })
            .then_err(unknown);
    }

    #[test]
    fn apply_of_bad_properties_json_never_fails() {
        let odd = E::ImageUpdated(pb::ImageUpdated {
            properties_json: Some("not json".into()),
            ..Default::default()
        });
        let state = given::<Image>([created(), odd]).0;
        assert!(state.properties.is_empty());
    }

    #[test]
    fn status_spells_like_glance() {
        for (s, text) in [
            (ImageStatus::Queued, "queued"),
            (ImageStatus::Saving, "saving"),
            (ImageStatus::Uploading, "uploading"),
            (ImageStatus::Importing, "importing"),
            (ImageStatus::Active, "active"),
            (ImageStatus::Deactivated, "deactivated"),
            (ImageStatus::Deleted, "deleted"),
        ] {
            assert_eq!(s.as_str(), text);
            assert_eq!(serde_json::to_value(s).unwrap(), json!(text));
        }
    }

    /// Run `cmds` in order against a fresh image, applying each decision; return every event.
    fn run(cmds: Vec<ImageCommand>) -> Vec<E> {
        let mut state = Image::default();
        let mut all = Vec::new();
        for cmd in cmds {
            let events = state
                .decide(&cmd)
                .unwrap_or_else(|e| panic!("{cmd:?} refused: {e}"));
            for e in &events {
                state = state.apply(e);
            }
            all.extend(events);
        }
        all
    }

    /// Every event type that `decide` can emit, produced by `decide` itself, survives the log codec.
    #[test]
    fn every_emitted_event_round_trips_through_the_codec() {
        let events = run(vec![
            create(),
            ImageCommand::Update {
                name: Some("n2".into()),
                disk_format: Some("raw".into()),
                container_format: None,
                visibility: None,
                min_disk: Some(3),
                min_ram: None,
                protected: None,
                os_hidden: Some(true),
                tags: Some(vec!["x".into(), "y".into()]),
                properties: Some(BTreeMap::new()),
            },
            ImageCommand::StartUpload,
            ImageCommand::AbortUpload {
                reason: "broken pipe".into(),
            },
            ImageCommand::Stage { size: 7 },
            ImageCommand::StartImport {
                method: "glance-direct".into(),
            },
            store_data(),
            ImageCommand::Deactivate,
            ImageCommand::Reactivate,
            ImageCommand::AddMember {
                member_id: "p2".into(),
            },
            ImageCommand::SetMemberStatus {
                member_id: "p2".into(),
                status: "accepted".into(),
            },
            ImageCommand::RemoveMember {
                member_id: "p2".into(),
            },
            ImageCommand::Delete,
        ]);
        events.iter().for_each(assert_round_trips);
        let types: BTreeSet<&str> = events.iter().map(|e| e.event_type()).collect();
        assert_eq!(
            types.len(),
            13,
            "every image event type is emitted by some decision: {types:?}"
        );
        assert!(types
            .iter()
            .all(|t| t.starts_with("image.") && t.ends_with(".v1")));
    }
}
