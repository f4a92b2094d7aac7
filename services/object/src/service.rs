//! The object service: what Swift's proxy asks of its account, container and object servers, over the
//! aggregates (writes), `ObjectView` (reads) and the blob store (bytes).
//!
//! An object write is: bytes into a temp blob (MD5 while streaming, checked against the client's ETag, fsync,
//! rename), then `ObjectStored` on the object's stream, then the blob it replaced is deleted. A failure before
//! the event deletes the new blob; a crash between the event and the old blob's deletion leaves an
//! unreferenced blob that `sweep` removes at the next start. So no partial object is ever visible and no
//! orphan file survives a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use strata_actors::object::{
    container_id, object_id, AccountCommand, Container, ContainerCommand, ObjectCommand,
    ObjectRecord, StoredObject, SwiftAccount,
};
use strata_actors::{CommandError, DomainError, Repository, Runtime};
use strata_events::Metadata;
use strata_projections::object::ObjectView;
use strata_projections::Live;
use strata_proto::ObjectEvent as E;
use thiserror::Error;

use crate::blob::{Blob, BlobError, BlobStore, ByteStream};

/// Largest single object (Swift's `max_file_size`: 5 GiB + 2 bytes).
pub const MAX_FILE_SIZE: u64 = 5 * 1024 * 1024 * 1024 + 2;
/// How long a write waits for the view to show it (read-your-writes).
const READ_YOUR_WRITES: Duration = Duration::from_secs(10);

/// Why an object storage request failed; the API maps each to Swift's status code.
#[derive(Debug, Error)]
pub enum ObjectError {
    #[error("{0}")]
    NotFound(String),
    /// 409: e.g. deleting a container that is not empty.
    #[error("{0}")]
    Conflict(String),
    /// 412: `If-None-Match: *` on an existing object.
    #[error("Precondition Failed")]
    PreconditionFailed,
    /// 422: the bytes do not have the ETag the client sent.
    #[error("Unprocessable Entity")]
    EtagMismatch,
    /// 413: too large, or over a quota.
    #[error("{0}")]
    TooLarge(String),
    /// 400
    #[error("{0}")]
    Invalid(String),
    /// 499: the client went away mid-upload.
    #[error("Client Disconnect")]
    ClientDisconnect,
    /// 503
    #[error("{0}")]
    Unavailable(String),
    /// 500
    #[error("{0}")]
    Internal(String),
}

impl From<BlobError> for ObjectError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::EtagMismatch { .. } => ObjectError::EtagMismatch,
            BlobError::TooLarge { .. } => {
                ObjectError::TooLarge("Your request is too large.".into())
            }
            BlobError::NotFound(id) => {
                ObjectError::Internal(format!("object data {id} is missing"))
            }
            other => ObjectError::Internal(format!("object data: {other}")),
        }
    }
}

impl From<CommandError> for ObjectError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Domain(DomainError::NotFound { kind, id }) => {
                ObjectError::NotFound(format!("{kind} {id} not found"))
            }
            CommandError::Domain(DomainError::Conflict(m)) if m == "Precondition Failed" => {
                ObjectError::PreconditionFailed
            }
            CommandError::Domain(DomainError::Conflict(m)) => ObjectError::Conflict(m),
            CommandError::Domain(DomainError::Invalid(m)) => ObjectError::Invalid(m),
            CommandError::Domain(DomainError::OverQuota(m)) => ObjectError::TooLarge(m),
            CommandError::Domain(other) => ObjectError::Invalid(other.to_string()),
            CommandError::Contention(n) => {
                ObjectError::Unavailable(format!("gave up after {n} concurrent writes"))
            }
            other => ObjectError::Internal(other.to_string()),
        }
    }
}

/// Swift's X-Timestamp for now: Unix seconds with five decimals.
pub fn now_timestamp() -> String {
    let now = chrono::Utc::now();
    format!(
        "{}.{:05}",
        now.timestamp(),
        now.timestamp_subsec_micros() / 10
    )
}

/// Unix seconds of an X-Timestamp (0 when unreadable).
pub fn timestamp_secs(ts: &str) -> f64 {
    ts.parse().unwrap_or(0.0)
}

/// What a PUT stores besides the bytes.
#[derive(Debug, Clone, Default)]
pub struct PutObject {
    pub account: String,
    pub container: String,
    pub name: String,
    pub content_type: String,
    /// x-object-meta-*, content-disposition, content-encoding, x-delete-at, x-object-manifest, ...
    pub headers: BTreeMap<String, String>,
    /// The client's ETag (MD5, hex), checked before anything becomes visible.
    pub etag: Option<String>,
    pub if_none_match: bool,
    /// Content-Length when the client sent one (a chunked upload has none).
    pub content_length: Option<u64>,
}

/// The object service (shared as `Arc<ObjectService>`).
pub struct ObjectService {
    accounts: Repository<SwiftAccount>,
    containers: Repository<Container>,
    objects: Repository<StoredObject>,
    pub view: Live<ObjectView>,
    pub blobs: BlobStore,
}

/// The result of a write: the record now stored and the log position that shows it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub record: ObjectRecord,
    pub position: u64,
}

impl ObjectService {
    pub fn new(runtime: Arc<Runtime>, view: Live<ObjectView>, blobs: BlobStore) -> Self {
        ObjectService {
            accounts: Repository::new(runtime.clone()),
            containers: Repository::new(runtime.clone()),
            objects: Repository::new(runtime),
            view,
            blobs,
        }
    }

    /// Remove unfinished uploads and blobs no object refers to (a crash between a write's steps). Run at
    /// start, before the API listens.
    pub fn sweep(&self) -> std::io::Result<crate::blob::SweepReport> {
        let keep = self.view.snapshot().blobs();
        self.blobs.sweep(&keep)
    }

    async fn seen(&self, position: Option<u64>) -> Result<(), ObjectError> {
        if let Some(p) = position {
            if !self.view.wait_for(p, READ_YOUR_WRITES).await {
                return Err(ObjectError::Unavailable(
                    "the object listing is behind; try again".into(),
                ));
            }
        }
        Ok(())
    }

    /// POST on an account: set and remove headers.
    pub async fn change_account_headers(
        &self,
        account: &str,
        set: BTreeMap<String, String>,
        removed: Vec<String>,
        meta: Metadata,
    ) -> Result<(), ObjectError> {
        let out = self
            .accounts
            .execute(
                account,
                AccountCommand::ChangeHeaders {
                    account: account.into(),
                    set,
                    removed,
                },
                meta,
            )
            .await?;
        self.seen(out.position).await
    }

    /// PUT on a container: true when it was created (201), false when it existed (202).
    pub async fn put_container(
        &self,
        account: &str,
        name: &str,
        set: BTreeMap<String, String>,
        removed: Vec<String>,
        meta: Metadata,
    ) -> Result<bool, ObjectError> {
        let out = self
            .containers
            .execute(
                &container_id(account, name),
                ContainerCommand::Put {
                    account: account.into(),
                    name: name.into(),
                    set,
                    removed,
                    storage_policy: String::new(),
                    timestamp: now_timestamp(),
                },
                meta,
            )
            .await?;
        self.seen(out.position).await?;
        Ok(out
            .events
            .iter()
            .any(|e| matches!(e, E::ContainerCreated(_))))
    }

    /// POST on a container.
    pub async fn post_container(
        &self,
        account: &str,
        name: &str,
        set: BTreeMap<String, String>,
        removed: Vec<String>,
        meta: Metadata,
    ) -> Result<(), ObjectError> {
        if self.view.snapshot().container(account, name).is_none() {
            return Err(ObjectError::NotFound(format!("container {name} not found")));
        }
        let out = self
            .containers
            .execute(
                &container_id(account, name),
                ContainerCommand::ChangeHeaders { set, removed },
                meta,
            )
            .await?;
        self.seen(out.position).await
    }

    /// DELETE on a container: only when it holds no object (409 otherwise).
    pub async fn delete_container(
        &self,
        account: &str,
        name: &str,
        meta: Metadata,
    ) -> Result<(), ObjectError> {
        {
            let view = self.view.snapshot();
            let Some(c) = view.container(account, name) else {
                return Err(ObjectError::NotFound(format!("container {name} not found")));
            };
            if c.object_count() > 0 {
                return Err(ObjectError::Conflict(
                    "There was a conflict when trying to complete your request.".into(),
                ));
            }
        }
        let out = self
            .containers
            .execute(
                &container_id(account, name),
                ContainerCommand::Delete {
                    timestamp: now_timestamp(),
                },
                meta,
            )
            .await?;
        self.seen(out.position).await
    }

    /// Quota room left for `extra` bytes and one more object in a container (Swift's container and account
    /// quota middlewares read the same numbers).
    pub fn check_quota(
        &self,
        account: &str,
        container: &str,
        name: &str,
        extra: u64,
    ) -> Result<(), ObjectError> {
        let view = self.view.snapshot();
        let Some(acct) = view.account(account) else {
            return Err(ObjectError::NotFound(format!(
                "container {container} not found"
            )));
        };
        let Some(c) = acct.container(container) else {
            return Err(ObjectError::NotFound(format!(
                "container {container} not found"
            )));
        };
        let replaced = c.objects.get(name);
        let replaced_bytes = replaced.map_or(0, |o| o.size);
        let quota = |headers: &BTreeMap<String, String>, key: &str| -> Option<u64> {
            headers.get(key).and_then(|v| v.parse().ok())
        };
        if let Some(limit) = quota(&c.state.headers, "x-container-meta-quota-bytes") {
            if c.bytes_used.saturating_sub(replaced_bytes) + extra > limit {
                return Err(ObjectError::TooLarge("Upload exceeds quota.".into()));
            }
        }
        if let Some(limit) = quota(&c.state.headers, "x-container-meta-quota-count") {
            if replaced.is_none() && c.object_count() + 1 > limit {
                return Err(ObjectError::TooLarge("Upload exceeds quota.".into()));
            }
        }
        if let Some(limit) = quota(&acct.state.headers, "x-account-meta-quota-bytes") {
            let (_, _, bytes) = acct.totals();
            if bytes.saturating_sub(replaced_bytes) + extra > limit {
                return Err(ObjectError::TooLarge("Upload exceeds quota.".into()));
            }
        }
        Ok(())
    }

    /// PUT an object from a stream of bytes.
    pub async fn put_object<S, X>(
        &self,
        put: PutObject,
        body: S,
        meta: Metadata,
    ) -> Result<Stored, ObjectError>
    where
        S: Stream<Item = Result<Bytes, X>> + Unpin,
        X: std::fmt::Display,
    {
        let declared = put.content_length.unwrap_or(0);
        if declared > MAX_FILE_SIZE {
            return Err(ObjectError::TooLarge("Your request is too large.".into()));
        }
        self.check_quota(&put.account, &put.container, &put.name, declared)?;
        if put.if_none_match
            && self
                .view
                .snapshot()
                .object(&put.account, &put.container, &put.name)
                .is_some()
        {
            return Err(ObjectError::PreconditionFailed);
        }
        let mut writer = self.blobs.begin().await?;
        writer.set_limit(Some(MAX_FILE_SIZE));
        let mut body = body;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => writer.write(&bytes).await?,
                Err(e) => {
                    tracing::info!(error = %e, object = %put.name, "upload cut short");
                    writer.abort().await;
                    return Err(ObjectError::ClientDisconnect);
                }
            }
        }
        if let Some(len) = put.content_length {
            if writer.bytes_written() != len {
                writer.abort().await;
                return Err(ObjectError::ClientDisconnect);
            }
        }
        let blob = writer.commit(put.etag.as_deref()).await?;
        let record = ObjectRecord {
            size: blob.size,
            etag: blob.md5.clone(),
            content_type: put.content_type.clone(),
            timestamp: now_timestamp(),
            blob: blob.id.clone(),
            blob_size: blob.size,
            blob_md5: blob.md5.clone(),
            headers: put.headers.clone(),
            static_large_object: false,
        };
        self.store_with_blob(&put, record, &blob, meta).await
    }

    /// Record `record` (whose blob `blob` is durable) under the object's name; the blob is deleted when the
    /// record is refused. Quotas are checked again with the real size; versioning archives what it replaces.
    pub async fn store_with_blob(
        &self,
        put: &PutObject,
        record: ObjectRecord,
        blob: &Blob,
        meta: Metadata,
    ) -> Result<Stored, ObjectError> {
        let result = async {
            self.check_quota(&put.account, &put.container, &put.name, record.size)?;
            self.archive_current(&put.account, &put.container, &put.name, meta.clone())
                .await?;
            self.store_record(put, record, meta).await
        }
        .await;
        if result.is_err() {
            if let Err(e) = self.blobs.delete(&blob.id).await {
                tracing::warn!(blob = %blob.id, error = %e, "could not remove a refused object's data");
            }
        }
        result
    }

    /// Append the record, then delete the blob it replaced.
    async fn store_record(
        &self,
        put: &PutObject,
        record: ObjectRecord,
        meta: Metadata,
    ) -> Result<Stored, ObjectError> {
        let out = self
            .objects
            .execute(
                &object_id(&put.account, &put.container, &put.name),
                ObjectCommand::Store {
                    account: put.account.clone(),
                    container: put.container.clone(),
                    name: put.name.clone(),
                    record: record.clone(),
                    if_none_match: put.if_none_match,
                },
                meta,
            )
            .await?;
        for e in &out.events {
            if let E::ObjectStored(s) = e {
                self.forget_blob(&s.replaced_blob).await;
            }
        }
        self.seen(out.position).await?;
        Ok(Stored {
            record,
            position: out.position.unwrap_or(0),
        })
    }

    async fn forget_blob(&self, blob: &str) {
        if blob.is_empty() {
            return;
        }
        if let Err(e) = self.blobs.delete(blob).await {
            tracing::warn!(blob, error = %e, "could not remove replaced object data; the next start sweeps it");
        }
    }

    /// Copy a stored object's record and bytes (a new blob: hard link) under another name. `headers` and
    /// `content_type` replace the source's when given (Swift's copy keeps metadata unless told otherwise).
    pub async fn copy_object(
        &self,
        source: &ObjectRecord,
        to: PutObject,
        meta: Metadata,
    ) -> Result<Stored, ObjectError> {
        let id = self.blobs.link_copy(&source.blob).await?;
        let blob = Blob {
            id: id.clone(),
            size: source.blob_size,
            md5: source.blob_md5.clone(),
        };
        let mut record = source.clone();
        record.blob = id;
        record.timestamp = now_timestamp();
        record.headers = to.headers.clone();
        if !to.content_type.is_empty() {
            record.content_type = to.content_type.clone();
        }
        self.store_with_blob(&to, record, &blob, meta).await
    }

    /// POST on an object: replace its mutable headers.
    pub async fn post_object(
        &self,
        account: &str,
        container: &str,
        name: &str,
        headers: BTreeMap<String, String>,
        content_type: String,
        meta: Metadata,
    ) -> Result<(), ObjectError> {
        let out = self
            .objects
            .execute(
                &object_id(account, container, name),
                ObjectCommand::ReplaceHeaders {
                    headers,
                    content_type,
                    timestamp: now_timestamp(),
                },
                meta,
            )
            .await?;
        self.seen(out.position).await
    }

    /// DELETE an object (or, with `expect_blob`, only that version of it). With `X-Versions-Location`
    /// (stack mode) the newest archived version comes back in its place; with `X-History-Location` the
    /// deleted version is archived first.
    pub async fn delete_object(
        &self,
        account: &str,
        container: &str,
        name: &str,
        reason: &str,
        expect_blob: Option<String>,
        meta: Metadata,
    ) -> Result<(), ObjectError> {
        let versioning = self.versioning(account, container);
        if let Some(Versioning::History(_)) = &versioning {
            self.archive_current(account, container, name, meta.clone())
                .await?;
        }
        let out = self
            .objects
            .execute(
                &object_id(account, container, name),
                ObjectCommand::Delete {
                    timestamp: now_timestamp(),
                    reason: reason.into(),
                    expect_blob,
                },
                meta.clone(),
            )
            .await?;
        for e in &out.events {
            if let E::ObjectDeleted(d) = e {
                self.forget_blob(&d.blob).await;
            }
        }
        self.seen(out.position).await?;
        if let (Some(Versioning::Stack(archive)), true) = (&versioning, !out.events.is_empty()) {
            self.restore_previous(account, container, name, archive, meta)
                .await?;
        }
        Ok(())
    }

    fn versioning(&self, account: &str, container: &str) -> Option<Versioning> {
        let view = self.view.snapshot();
        let c = view.container(account, container)?;
        if let Some(l) = c.state.headers.get("x-versions-location") {
            return Some(Versioning::Stack(l.clone()));
        }
        c.state
            .headers
            .get("x-history-location")
            .map(|l| Versioning::History(l.clone()))
    }

    /// Before a version is replaced or (history mode) deleted: copy it into the archive container as
    /// `<len(name) as 3 hex digits><name>/<timestamp>`.
    async fn archive_current(
        &self,
        account: &str,
        container: &str,
        name: &str,
        meta: Metadata,
    ) -> Result<(), ObjectError> {
        let Some(versioning) = self.versioning(account, container) else {
            return Ok(());
        };
        let archive = match &versioning {
            Versioning::Stack(l) | Versioning::History(l) => l.clone(),
        };
        let current = {
            let view = self.view.snapshot();
            if view.container(account, &archive).is_none() {
                return Err(ObjectError::Invalid(format!(
                    "the versions container {archive} does not exist"
                )));
            }
            view.object(account, container, name).cloned()
        };
        let Some(current) = current else {
            return Ok(());
        };
        let to = PutObject {
            account: account.into(),
            container: archive,
            name: archive_name(name, &current.timestamp),
            content_type: current.content_type.clone(),
            headers: current.headers.clone(),
            ..Default::default()
        };
        let id = self.blobs.link_copy(&current.blob).await?;
        let mut record = current.clone();
        record.blob = id.clone();
        let blob = Blob {
            id,
            size: current.blob_size,
            md5: current.blob_md5.clone(),
        };
        // The archive is a plain store: it is not itself versioned.
        let stored = self.store_record(&to, record, meta).await;
        if stored.is_err() {
            self.forget_blob(&blob.id).await;
        }
        stored.map(|_| ())
    }

    /// After a delete in stack mode: move the newest archived version back.
    async fn restore_previous(
        &self,
        account: &str,
        container: &str,
        name: &str,
        archive: &str,
        meta: Metadata,
    ) -> Result<(), ObjectError> {
        let prefix = archive_prefix(name);
        let newest = {
            let view = self.view.snapshot();
            let Some(c) = view.container(account, archive) else {
                return Ok(());
            };
            c.objects
                .range::<_, String>(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .last()
                .map(|(k, v)| (k.clone(), v.clone()))
        };
        let Some((archived_name, record)) = newest else {
            return Ok(());
        };
        let to = PutObject {
            account: account.into(),
            container: container.into(),
            name: name.into(),
            ..Default::default()
        };
        let id = self.blobs.link_copy(&record.blob).await?;
        let mut restored = record.clone();
        restored.blob = id.clone();
        if let Err(e) = self.store_record(&to, restored, meta.clone()).await {
            self.forget_blob(&id).await;
            return Err(e);
        }
        let out = self
            .objects
            .execute(
                &object_id(account, archive, &archived_name),
                ObjectCommand::Delete {
                    timestamp: now_timestamp(),
                    reason: "restored".into(),
                    expect_blob: Some(record.blob.clone()),
                },
                meta,
            )
            .await?;
        for e in &out.events {
            if let E::ObjectDeleted(d) = e {
                self.forget_blob(&d.blob).await;
            }
        }
        self.seen(out.position).await
    }

    /// Read `len` bytes from `offset` of a stored object's blob.
    pub async fn read_blob(
        &self,
        record: &ObjectRecord,
        offset: u64,
        len: u64,
    ) -> Result<ByteStream, ObjectError> {
        if len == 0 {
            return Ok(Box::pin(futures::stream::empty()));
        }
        Ok(self.blobs.read(&record.blob, offset, len).await?)
    }

    /// Delete objects whose X-Delete-At has passed (the object expirer); returns how many went.
    pub async fn expire(&self, now: u64) -> usize {
        let due: Vec<(String, String, String, String)> = {
            let view = self.view.snapshot();
            view.expiring
                .iter()
                .take_while(|(at, ..)| *at <= now)
                .filter_map(|(_, a, c, o)| {
                    view.object(a, c, o)
                        .map(|r| (a.clone(), c.clone(), o.clone(), r.blob.clone()))
                })
                .collect()
        };
        let mut n = 0;
        for (account, container, name, blob) in due {
            let meta = Metadata::system("object-expirer");
            match self
                .objects
                .execute(
                    &object_id(&account, &container, &name),
                    ObjectCommand::Delete {
                        timestamp: now_timestamp(),
                        reason: "expired".into(),
                        expect_blob: Some(blob),
                    },
                    meta,
                )
                .await
            {
                Ok(out) => {
                    for e in &out.events {
                        if let E::ObjectDeleted(d) = e {
                            self.forget_blob(&d.blob).await;
                            n += 1;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(%account, %container, %name, error = %e, "expiring an object failed")
                }
            }
        }
        n
    }

    /// Run the expirer every `every` until the process ends.
    pub fn start_expirer(self: &Arc<Self>, every: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let now = chrono::Utc::now().timestamp().max(0) as u64;
                let n = me.expire(now).await;
                if n > 0 {
                    tracing::info!(expired = n, "object expirer deleted objects");
                }
            }
        });
    }
}

enum Versioning {
    Stack(String),
    History(String),
}

/// The archive prefix of an object name in a versions container.
pub fn archive_prefix(name: &str) -> String {
    format!("{:03x}{name}/", name.len())
}

fn archive_name(name: &str, timestamp: &str) -> String {
    format!("{}{timestamp}", archive_prefix(name))
}
