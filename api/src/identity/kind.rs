//! What the identity handlers do the same way for every kind of resource (domains, projects, users, roles,
//! services, endpoints, regions): find a row of the identity view or answer 404, render one row or a list
//! of them, run a command on the kind's aggregate, and keep a name unique within its scope through creates,
//! renames and deletes. Each kind says once where its rows live and how they look ([`Kind`], [`Named`]).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;
use strata_actors::{Aggregate, Repository};
use strata_events::Metadata;
use strata_projections::identity::IdentityView;
use strata_projections::persistent::OrdMap;

use super::util::collection;
use super::{Authed, Identity, KeystoneError};
use crate::common::RequestId;

/// The command type of a kind's aggregate.
pub type Command<K> = <<K as Kind>::Aggregate as Aggregate>::Command;

/// A kind of identity resource: its table in the view, its aggregate, its JSON and its names in responses.
pub trait Kind: 'static {
    /// A row of the view.
    type Row: Clone + 'static;
    /// The aggregate that records the kind's changes.
    type Aggregate: Aggregate;
    /// The JSON key of one row (`"project"`); also the kind a 404 names ("Could not find project: …").
    const KEY: &'static str;
    /// The JSON key of a list of rows (`"projects"`).
    const COLLECTION: &'static str;
    /// The policy action of reading one row (`"identity:get_project"`).
    const GET: &'static str;

    /// The kind's table of the view.
    fn table(view: &IdentityView) -> &OrdMap<String, Self::Row>;
    /// The kind's repository.
    fn repo(identity: &Identity) -> &Repository<Self::Aggregate>;
    /// The row as Keystone shows it.
    fn to_json(req: &HttpRequest, row: &Self::Row) -> Value;

    /// Whether `caller` may read row `id` (403 otherwise): admins only, unless the kind says more.
    fn may_read(caller: &Authed, _id: &str) -> Result<(), KeystoneError> {
        caller.require_admin(Self::GET)
    }
}

/// Declares a resource type as a [`Kind`]: its rows are `view.<table>`, its repository
/// `identity.<table>`, its read policy `identity:get_<key>`; `may_read` names a
/// `fn(&Authed, id, policy action)` when reading is not admin-only.
macro_rules! kind {
    ($kind:ident {
        row: $row:ty,
        aggregate: $aggregate:ty,
        key: $key:literal,
        collection: $collection:literal,
        table: $table:ident,
        json: $json:path
        $(, may_read: $may_read:path)? $(,)?
    }) => {
        impl $crate::identity::kind::Kind for $kind {
            type Row = $row;
            type Aggregate = $aggregate;
            const KEY: &'static str = $key;
            const COLLECTION: &'static str = $collection;
            const GET: &'static str = concat!("identity:get_", $key);
            fn table(
                view: &strata_projections::identity::IdentityView,
            ) -> &strata_projections::persistent::OrdMap<String, $row> {
                &view.$table
            }
            fn repo(
                identity: &$crate::identity::Identity,
            ) -> &strata_actors::Repository<$aggregate> {
                &identity.$table
            }
            fn to_json(req: &actix_web::HttpRequest, row: &$row) -> serde_json::Value {
                $json(req, row)
            }
            $(
                fn may_read(
                    caller: &$crate::identity::Authed,
                    id: &str,
                ) -> Result<(), $crate::identity::KeystoneError> {
                    $may_read(caller, id, Self::GET)
                }
            )?
        }
    };
}
pub(crate) use kind;

/// A kind whose names are unique within a scope: the owning domain's id (`""` for domains themselves).
pub trait Named: Kind {
    /// The policy action of deleting one row (`"identity:delete_project"`).
    const DELETE: &'static str;

    /// The scope the row's name is unique in.
    fn scope(row: &Self::Row) -> &str;
    /// The row's name.
    fn name(row: &Self::Row) -> &str;
    /// The command that deletes a row.
    fn delete_command() -> Command<Self>;

    /// Refusals of a delete beyond the policy (none unless the kind says so).
    fn may_delete(_caller: &Authed, _id: &str) -> Result<(), KeystoneError> {
        Ok(())
    }
}

/// Row `id` of kind `K` as the view has it now, or 404.
pub fn row<K: Kind>(identity: &Identity, id: &str) -> Result<K::Row, KeystoneError> {
    K::table(&identity.view.snapshot())
        .get(id)
        .cloned()
        .ok_or_else(|| KeystoneError::not_found(K::KEY, id))
}

/// 404 unless row `id` of kind `K` is in `view`.
pub fn exists<K: Kind>(view: &IdentityView, id: &str) -> Result<(), KeystoneError> {
    if K::table(view).contains_key(id) {
        Ok(())
    } else {
        Err(KeystoneError::not_found(K::KEY, id))
    }
}

/// Answer `{"<key>": <row>}` with `status` for row `id` of kind `K`, or 404.
pub fn answer<K: Kind>(
    identity: &Identity,
    status: StatusCode,
    req: &HttpRequest,
    id: &str,
) -> Result<HttpResponse, KeystoneError> {
    let view = identity.view.snapshot();
    let row = K::table(&view)
        .get(id)
        .ok_or_else(|| KeystoneError::not_found(K::KEY, id))?;
    Ok(HttpResponse::build(status).json(serde_json::json!({ K::KEY: K::to_json(req, row) })))
}

/// Answer `{"<collection>": [...], "links": {...}}` with the rows of kind `K` in `view` that `keep` accepts.
pub fn list<K: Kind>(
    req: &HttpRequest,
    view: &IdentityView,
    keep: impl Fn(&K::Row) -> bool,
) -> HttpResponse {
    let rows: Vec<Value> = K::table(view)
        .values()
        .filter(|r| keep(r))
        .map(|r| K::to_json(req, r))
        .collect();
    collection(req, K::COLLECTION, rows)
}

/// Run `cmd` on row `id` of kind `K` and wait until the view shows it.
pub async fn run<K: Kind>(
    identity: &Identity,
    id: &str,
    cmd: Command<K>,
    meta: &Metadata,
) -> Result<(), KeystoneError> {
    identity.run(K::repo(identity), id, cmd, meta).await?;
    Ok(())
}

/// Run `cmd` on row `id` of kind `K` for `caller`, then answer the row with `status`.
pub async fn run_and_answer<K: Kind>(
    identity: &Identity,
    caller: &Authed,
    rid: &RequestId,
    req: &HttpRequest,
    status: StatusCode,
    id: &str,
    cmd: Command<K>,
) -> Result<HttpResponse, KeystoneError> {
    run::<K>(identity, id, cmd, &rid.metadata(caller.0.principal())).await?;
    answer::<K>(identity, status, req, id)
}

/// Create row `id` of kind `K` named `name` in `scope` (409 when the name is taken).
pub async fn create_named<K: Named>(
    identity: &Identity,
    scope: &str,
    name: &str,
    id: &str,
    cmd: Command<K>,
    meta: &Metadata,
) -> Result<(), KeystoneError> {
    identity
        .create_named(K::repo(identity), K::KEY, scope, name, id, cmd, meta)
        .await?;
    Ok(())
}

/// Run an update of row `current` (id `id`) that may rename it to `new_name` (409 when that is taken).
pub async fn update_named<K: Named>(
    identity: &Identity,
    current: &K::Row,
    id: &str,
    new_name: Option<&str>,
    cmd: Command<K>,
    meta: &Metadata,
) -> Result<(), KeystoneError> {
    identity
        .update_named(
            K::repo(identity),
            K::KEY,
            K::scope(current),
            K::name(current),
            new_name,
            id,
            cmd,
            meta,
        )
        .await?;
    Ok(())
}

/// Delete row `current` (id `id`) of kind `K` and release its name.
pub async fn delete_named<K: Named>(
    identity: &Identity,
    current: &K::Row,
    id: &str,
    meta: &Metadata,
) -> Result<(), KeystoneError> {
    identity
        .delete_named(
            K::repo(identity),
            K::KEY,
            K::scope(current),
            K::name(current),
            id,
            K::delete_command(),
            meta,
        )
        .await?;
    Ok(())
}

/// `GET /v3/<collection>/{id}`: the row, for callers [`Kind::may_read`] lets through.
pub async fn show<K: Kind>(
    identity: web::Data<Identity>,
    caller: Authed,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, KeystoneError> {
    let id = path.into_inner();
    K::may_read(&caller, &id)?;
    answer::<K>(&identity, StatusCode::OK, &req, &id)
}

/// `DELETE /v3/<collection>/{id}` of a named kind: admins only ([`Named::DELETE`]), then the kind's own
/// refusals, 404 for an unknown id; the name is released with the row.
pub async fn delete<K: Named>(
    identity: web::Data<Identity>,
    caller: Authed,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, KeystoneError> {
    caller.require_admin(K::DELETE)?;
    let id = path.into_inner();
    K::may_delete(&caller, &id)?;
    let current = row::<K>(&identity, &id)?;
    let meta = rid.metadata(caller.0.principal());
    delete_named::<K>(&identity, &current, &id, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}
