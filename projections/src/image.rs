//! `ImageView`: every live Glance image as the API reads it (with its members), plus the visibility rules
//! for listing and the per-project usage that quotas need.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_events::RecordedEvent;
use strata_proto::ImageEvent as E;

use crate::persistent::OrdMap;
use crate::Projection;

/// One project's membership of a shared image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberRow {
    /// pending | accepted | rejected
    pub status: String,
    /// RFC 3339, UTC, seconds (`2024-05-01T12:00:00Z`).
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageRow {
    pub id: String,
    /// Project id of the owner ("" = none).
    pub owner: String,
    pub name: String,
    /// "" until set (Glance shows null).
    pub disk_format: String,
    /// "" until set (Glance shows null).
    pub container_format: String,
    /// public | private | shared | community
    pub visibility: String,
    pub min_disk: u64,
    pub min_ram: u64,
    pub protected: bool,
    pub os_hidden: bool,
    pub tags: Vec<String>,
    /// Extra (user-defined) properties.
    pub properties: BTreeMap<String, serde_json::Value>,
    /// queued | saving | uploading | importing | active | deactivated
    pub status: String,
    /// Bytes of data; `None` until data is staged or stored.
    pub size: Option<u64>,
    /// MD5 hex ("" until stored).
    pub checksum: String,
    pub os_hash_algo: String,
    pub os_hash_value: String,
    pub virtual_size: Option<u64>,
    /// Backend store id ("" until stored).
    pub store: String,
    /// Location of the data in its store ("" until stored).
    pub location: String,
    /// member (project) id -> membership.
    pub members: BTreeMap<String, MemberRow>,
    /// RFC 3339, UTC, seconds, from the recording time of the image's first event.
    pub created_at: String,
    /// RFC 3339, UTC, seconds, from the recording time of the image's last event (member events excluded,
    /// as in Glance).
    pub updated_at: String,
}

impl ImageRow {
    /// Whether a non-admin `project_id` sees this image in a default listing: its own, public and community
    /// images, and shared images it has accepted.
    pub fn listed_for(&self, project_id: &str) -> bool {
        (!project_id.is_empty() && self.owner == project_id)
            || self.visibility == "public"
            || self.visibility == "community"
            || (self.visibility == "shared"
                && self
                    .members
                    .get(project_id)
                    .is_some_and(|m| m.status == "accepted"))
    }

    /// Whether a non-admin `project_id` may see this image at all (`GET /v2/images/{id}`): as listed, or a
    /// member of a shared image whatever the membership status (Glance's `is_image_visible`).
    pub fn readable_by(&self, project_id: &str) -> bool {
        self.listed_for(project_id)
            || (self.visibility == "shared" && self.members.contains_key(project_id))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageView {
    /// Live (not deleted) images by id.
    pub images: OrdMap<String, ImageRow>,
    /// Events this projection could not decode (kept so a rebuild shows the same count).
    pub undecodable: u64,
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

fn properties(json: &str) -> BTreeMap<String, serde_json::Value> {
    if json.is_empty() {
        return BTreeMap::new();
    }
    serde_json::from_str(json).unwrap_or_default()
}

/// Glance's timestamp format: RFC 3339 in UTC with whole seconds.
fn timestamp(e: &RecordedEvent) -> String {
    e.recorded_at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Projection for ImageView {
    const NAME: &'static str = "image";
    const VERSION: u32 = 1;

    fn handle(&mut self, event: &RecordedEvent) {
        let Some(ev) =
            crate::runner::decode_service_event::<E>(event, "image", &mut self.undecodable)
        else {
            return;
        };
        let at = timestamp(event);
        if let E::ImageCreated(c) = ev {
            self.images.insert(
                c.image_id.clone(),
                ImageRow {
                    id: c.image_id,
                    owner: c.owner,
                    name: c.name,
                    disk_format: c.disk_format,
                    container_format: c.container_format,
                    visibility: c.visibility,
                    min_disk: c.min_disk,
                    min_ram: c.min_ram,
                    protected: c.protected,
                    os_hidden: c.os_hidden,
                    tags: c.tags,
                    properties: properties(&c.properties_json),
                    status: "queued".into(),
                    created_at: at.clone(),
                    updated_at: at,
                    ..Default::default()
                },
            );
            return;
        }
        let id = crate::runner::aggregate_id(event);
        if matches!(ev, E::ImageDeleted(_)) {
            self.images.remove(&id);
            return;
        }
        let Some(row) = self.images.get_mut(&id) else {
            return;
        };
        match ev {
            E::ImageCreated(_) | E::ImageDeleted(_) => {}
            E::ImageUpdated(u) => {
                set(&mut row.name, u.name);
                set(&mut row.disk_format, u.disk_format);
                set(&mut row.container_format, u.container_format);
                set(&mut row.visibility, u.visibility);
                set(&mut row.min_disk, u.min_disk);
                set(&mut row.min_ram, u.min_ram);
                set(&mut row.protected, u.protected);
                set(&mut row.os_hidden, u.os_hidden);
                if u.tags_changed {
                    row.tags = u.tags;
                }
                if let Some(p) = u.properties_json {
                    row.properties = properties(&p);
                }
                row.updated_at = at;
            }
            E::ImageUploadStarted(_) => {
                row.status = "saving".into();
                row.updated_at = at;
            }
            E::ImageUploadAborted(_) => {
                row.status = "queued".into();
                row.size = None;
                row.checksum.clear();
                row.os_hash_algo.clear();
                row.os_hash_value.clear();
                row.virtual_size = None;
                row.store.clear();
                row.location.clear();
                row.updated_at = at;
            }
            E::ImageStaged(s) => {
                row.status = "uploading".into();
                row.size = Some(s.size);
                row.updated_at = at;
            }
            E::ImageImportStarted(_) => {
                row.status = "importing".into();
                row.updated_at = at;
            }
            E::ImageDataStored(d) => {
                row.status = "active".into();
                row.size = Some(d.size);
                row.checksum = d.checksum;
                row.os_hash_algo = d.os_hash_algo;
                row.os_hash_value = d.os_hash_value;
                row.virtual_size = d.virtual_size;
                row.store = d.store;
                row.location = d.location;
                row.updated_at = at;
            }
            E::ImageDeactivated(_) => {
                row.status = "deactivated".into();
                row.updated_at = at;
            }
            E::ImageReactivated(_) => {
                row.status = "active".into();
                row.updated_at = at;
            }
            E::ImageMemberAdded(m) => {
                row.members.insert(
                    m.member_id,
                    MemberRow {
                        status: "pending".into(),
                        created_at: at.clone(),
                        updated_at: at,
                    },
                );
            }
            E::ImageMemberStatusChanged(m) => {
                if let Some(member) = row.members.get_mut(&m.member_id) {
                    member.status = m.status;
                    member.updated_at = at;
                }
            }
            E::ImageMemberRemoved(m) => {
                row.members.remove(&m.member_id);
            }
            E::ImageSlotTaken(_) | E::ImageBytesTaken(_) | E::ImageSlotFreed(_) => {}
        }
    }
}

impl ImageView {
    pub fn image(&self, image_id: &str) -> Option<&ImageRow> {
        self.images.get(image_id)
    }

    /// The images `project_id` sees in a default listing, in id order: everything for an admin; otherwise
    /// its own, public and community images, and shared images whose membership it has accepted. (A listing
    /// filtered by `member_status` uses [`ImageView::member_status`] for pending/rejected memberships.)
    pub fn visible_to<'a>(
        &'a self,
        project_id: &'a str,
        is_admin: bool,
    ) -> impl Iterator<Item = &'a ImageRow> + 'a {
        self.images
            .values()
            .filter(move |r| is_admin || r.listed_for(project_id))
    }

    /// Whether `project_id` may read one image (`GET`): admin, listed, or any membership of a shared image.
    pub fn can_read(&self, image_id: &str, project_id: &str, is_admin: bool) -> bool {
        self.images
            .get(image_id)
            .is_some_and(|r| is_admin || r.readable_by(project_id))
    }

    /// The membership status (pending | accepted | rejected) of `project_id` on `image_id`, if a member.
    pub fn member_status(&self, image_id: &str, project_id: &str) -> Option<&str> {
        self.images
            .get(image_id)?
            .members
            .get(project_id)
            .map(|m| m.status.as_str())
    }

    /// Quota usage of a project: how many live images it owns, and their bytes (staged or stored).
    pub fn usage(&self, owner: &str) -> (u64, u64) {
        self.images
            .values()
            .filter(|r| r.owner == owner)
            .fold((0, 0), |(n, bytes), r| (n + 1, bytes + r.size.unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{put, put_raw};
    use strata_events::{EventLog, MemoryLog};

    use strata_proto::image as pb;

    fn created(id: &str, owner: &str, visibility: &str) -> E {
        E::ImageCreated(pb::ImageCreated {
            image_id: id.into(),
            owner: owner.into(),
            name: format!("img-{id}"),
            disk_format: "qcow2".into(),
            container_format: "bare".into(),
            visibility: visibility.into(),
            min_ram: 64,
            tags: vec!["t1".into()],
            properties_json: r#"{"os_distro":"cirros"}"#.into(),
            ..Default::default()
        })
    }

    fn stored(size: u64) -> E {
        E::ImageDataStored(pb::ImageDataStored {
            size,
            checksum: "md5".into(),
            os_hash_algo: "sha512".into(),
            os_hash_value: "sha".into(),
            virtual_size: Some(size * 2),
            store: "file".into(),
            location: "file:///x".into(),
        })
    }

    /// i-1: shared by p1 (p2 pending, p3 accepted), uploaded. i-2: public, owned by p2, staged.
    /// i-3: private, owned by p3. i-4: community, owned by p3, deactivated. i-5: deleted.
    async fn fixture() -> MemoryLog {
        let log = MemoryLog::new();
        put(&log, "image-i-1", created("i-1", "p1", "shared")).await;
        put(
            &log,
            "image-i-1",
            E::ImageUploadStarted(pb::ImageUploadStarted {}),
        )
        .await;
        put(&log, "image-i-1", stored(100)).await;
        for m in ["p2", "p3"] {
            put(
                &log,
                "image-i-1",
                E::ImageMemberAdded(pb::ImageMemberAdded {
                    member_id: m.into(),
                }),
            )
            .await;
        }
        put(
            &log,
            "image-i-1",
            E::ImageMemberStatusChanged(pb::ImageMemberStatusChanged {
                member_id: "p3".into(),
                status: "accepted".into(),
            }),
        )
        .await;
        put(&log, "image-i-2", created("i-2", "p2", "public")).await;
        put(
            &log,
            "image-i-2",
            E::ImageStaged(pb::ImageStaged { size: 7 }),
        )
        .await;
        put(&log, "image-i-3", created("i-3", "p3", "private")).await;
        put(&log, "image-i-4", created("i-4", "p3", "community")).await;
        put(
            &log,
            "image-i-4",
            E::ImageImportStarted(pb::ImageImportStarted {
                method: "web-download".into(),
            }),
        )
        .await;
        put(&log, "image-i-4", stored(30)).await;
        put(
            &log,
            "image-i-4",
            E::ImageDeactivated(pb::ImageDeactivated {}),
        )
        .await;
        put(&log, "image-i-5", created("i-5", "p1", "private")).await;
        put(&log, "image-i-5", E::ImageDeleted(pb::ImageDeleted {})).await;
        log
    }

    async fn view_of(log: MemoryLog) -> ImageView {
        let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(log);
        crate::rebuild(&log, 1000).await.unwrap()
    }

    fn ids<'a>(rows: impl Iterator<Item = &'a ImageRow>) -> Vec<&'a str> {
        rows.map(|r| r.id.as_str()).collect()
    }

    #[tokio::test]
    async fn folds_image_events_into_rows() {
        let view = view_of(fixture().await).await;
        assert_eq!(ids(view.images.values()), vec!["i-1", "i-2", "i-3", "i-4"]);
        let i1 = &view.images["i-1"];
        assert_eq!(i1.status, "active");
        assert_eq!((i1.size, i1.virtual_size), (Some(100), Some(200)));
        assert_eq!(i1.checksum, "md5");
        assert_eq!(
            (i1.os_hash_algo.as_str(), i1.os_hash_value.as_str()),
            ("sha512", "sha")
        );
        assert_eq!(
            (i1.store.as_str(), i1.location.as_str()),
            ("file", "file:///x")
        );
        assert_eq!(i1.name, "img-i-1");
        assert_eq!(
            (i1.disk_format.as_str(), i1.container_format.as_str()),
            ("qcow2", "bare")
        );
        assert_eq!(i1.min_ram, 64);
        assert_eq!(i1.tags, vec!["t1".to_string()]);
        assert_eq!(i1.properties["os_distro"], serde_json::json!("cirros"));
        assert_eq!(i1.members["p2"].status, "pending");
        assert_eq!(i1.members["p3"].status, "accepted");
        assert_eq!(view.images["i-2"].status, "uploading");
        assert_eq!(view.images["i-2"].size, Some(7));
        assert_eq!(view.images["i-3"].status, "queued");
        assert_eq!(view.images["i-3"].size, None);
        assert_eq!(view.images["i-4"].status, "deactivated");
        // Glance's timestamp shape: 2024-05-01T12:00:00Z.
        for t in [&i1.created_at, &i1.updated_at, &i1.members["p2"].created_at] {
            assert_eq!(t.len(), 20, "{t}");
            assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        }
        assert!(i1.created_at <= i1.updated_at);
    }

    #[tokio::test]
    async fn updates_aborts_and_member_removal_apply() {
        let log = fixture().await;
        put(
            &log,
            "image-i-3",
            E::ImageUpdated(pb::ImageUpdated {
                name: Some("renamed".into()),
                visibility: Some("shared".into()),
                protected: Some(true),
                tags_changed: true,
                tags: vec![],
                properties_json: Some(String::new()),
                ..Default::default()
            }),
        )
        .await;
        put(
            &log,
            "image-i-2",
            E::ImageUploadAborted(pb::ImageUploadAborted {
                reason: "bad".into(),
            }),
        )
        .await;
        put(
            &log,
            "image-i-1",
            E::ImageMemberRemoved(pb::ImageMemberRemoved {
                member_id: "p3".into(),
            }),
        )
        .await;
        put(
            &log,
            "image-i-4",
            E::ImageReactivated(pb::ImageReactivated {}),
        )
        .await;
        let view = view_of(log).await;
        let i3 = &view.images["i-3"];
        assert_eq!(
            (i3.name.as_str(), i3.visibility.as_str()),
            ("renamed", "shared")
        );
        assert!(i3.protected);
        assert!(i3.tags.is_empty() && i3.properties.is_empty());
        let i2 = &view.images["i-2"];
        assert_eq!((i2.status.as_str(), i2.size), ("queued", None));
        assert_eq!(view.member_status("i-1", "p3"), None);
        assert_eq!(view.images["i-4"].status, "active");
    }

    #[tokio::test]
    async fn visibility_follows_glance() {
        let view = view_of(fixture().await).await;
        assert_eq!(
            ids(view.visible_to("px", true)),
            vec!["i-1", "i-2", "i-3", "i-4"]
        );
        // Owner sees its shared image; strangers see only public and community images.
        assert_eq!(ids(view.visible_to("p1", false)), vec!["i-1", "i-2", "i-4"]);
        assert_eq!(ids(view.visible_to("px", false)), vec!["i-2", "i-4"]);
        // A pending member does not list the image, an accepted one does.
        assert_eq!(ids(view.visible_to("p2", false)), vec!["i-2", "i-4"]);
        assert_eq!(
            ids(view.visible_to("p3", false)),
            vec!["i-1", "i-2", "i-3", "i-4"]
        );
        assert_eq!(view.member_status("i-1", "p2"), Some("pending"));
        assert_eq!(view.member_status("i-1", "p3"), Some("accepted"));
        assert_eq!(view.member_status("i-1", "p1"), None);
        assert_eq!(view.member_status("nope", "p1"), None);
        // Reading one image: any membership is enough; private images stay private.
        assert!(view.can_read("i-1", "p2", false));
        assert!(!view.can_read("i-1", "px", false));
        assert!(!view.can_read("i-3", "p1", false));
        assert!(view.can_read("i-3", "p1", true));
        assert!(!view.can_read("i-5", "p1", true));
        // An unscoped caller owns nothing.
        assert_eq!(ids(view.visible_to("", false)), vec!["i-2", "i-4"]);
    }

    #[tokio::test]
    async fn members_of_an_image_that_is_no_longer_shared_see_nothing() {
        let log = fixture().await;
        put(
            &log,
            "image-i-1",
            E::ImageUpdated(pb::ImageUpdated {
                visibility: Some("private".into()),
                ..Default::default()
            }),
        )
        .await;
        let view = view_of(log).await;
        assert_eq!(ids(view.visible_to("p3", false)), vec!["i-2", "i-3", "i-4"]);
        assert!(!view.can_read("i-1", "p2", false));
    }

    #[tokio::test]
    async fn usage_counts_live_images_and_bytes() {
        let view = view_of(fixture().await).await;
        assert_eq!(view.usage("p1"), (1, 100));
        assert_eq!(view.usage("p2"), (1, 7));
        assert_eq!(view.usage("p3"), (2, 30));
        assert_eq!(view.usage("px"), (0, 0));
    }

    #[tokio::test]
    async fn skips_other_services_and_counts_undecodable_events() {
        let log = fixture().await;
        put_raw(&log, "image-i-9", "image.ImageCreated.v1", vec![0xff, 0xff]).await;
        put_raw(&log, "project-p1", "identity.ProjectDeleted.v1", vec![]).await;
        let view = view_of(log).await;
        assert_eq!(view.undecodable, 1);
        assert_eq!(view.images.len(), 4);
    }

    #[tokio::test]
    async fn rebuild_equals_live_and_checkpoint_resumes() {
        let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(fixture().await);
        let head = 16;
        let live = crate::Live::<ImageView>::start(log.clone(), Default::default())
            .await
            .unwrap();
        assert_eq!(live.position(), head - 1);
        put(
            log.as_ref(),
            "image-i-3",
            E::ImageUpdated(pb::ImageUpdated {
                min_disk: Some(5),
                ..Default::default()
            }),
        )
        .await;
        assert!(live.wait_for(head, std::time::Duration::from_secs(5)).await);
        assert_eq!(live.snapshot().images["i-3"].min_disk, 5);
        let rebuilt: ImageView = crate::rebuild(&log, head).await.unwrap();
        assert_eq!(live.snapshot().digest().unwrap(), rebuilt.digest().unwrap());
        // A restart resumes from the stored checkpoint and reaches the same state.
        let again = crate::Live::<ImageView>::start(log.clone(), Default::default())
            .await
            .unwrap();
        assert_eq!(again.position(), head);
        assert_eq!(
            again.snapshot().digest().unwrap(),
            rebuilt.digest().unwrap()
        );
    }

    #[tokio::test]
    async fn rebuilding_twice_gives_the_same_digest() {
        let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(fixture().await);
        let a: ImageView = crate::rebuild(&log, 100).await.unwrap();
        let b: ImageView = crate::rebuild(&log, 100).await.unwrap();
        assert_eq!(a.digest().unwrap(), b.digest().unwrap());
        let c: ImageView = crate::rebuild(&log, 5).await.unwrap();
        assert_ne!(a.digest().unwrap(), c.digest().unwrap());
        let d = ImageView::decode_state(&a.encode_state().unwrap()).unwrap();
        assert_eq!(a.digest().unwrap(), d.digest().unwrap());
    }
}
