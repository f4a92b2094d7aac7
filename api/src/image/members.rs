//! `/v2/images/{id}/members`: the owner shares an image with other projects; each member accepts or rejects.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::image::ImageCommand;
use strata_projections::image::{ImageRow, MemberRow};

use super::{Caller, GlanceError, Images, ImagesExt};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2/images/{id}/members")
            .route(web::get().to(list))
            .route(web::post().to(add)),
    )
    .service(
        web::resource("/v2/images/{id}/members/{member}")
            .route(web::get().to(show))
            .route(web::put().to(set_status))
            .route(web::delete().to(remove)),
    );
}

fn member_json(image: &ImageRow, member: &str, m: &MemberRow) -> Value {
    json!({
        "image_id": image.id,
        "member_id": member,
        "status": m.status,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "schema": "/v2/schemas/member",
    })
}

fn body_field(body: &[u8], field: &str) -> Result<String, GlanceError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| GlanceError::bad_request(format!("Malformed JSON in request body: {e}")))?;
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| GlanceError::bad_request(format!("'{field}' is a required property")))
}

fn member_of(row: &ImageRow, member: &str) -> Result<MemberRow, GlanceError> {
    row.members.get(member).cloned().ok_or_else(|| {
        GlanceError::not_found(format!("{member} is not a member of image {}", row.id))
    })
}

async fn list(
    images: web::Data<Images>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, GlanceError> {
    let row = images.readable(&caller, &path.into_inner())?;
    if row.visibility != "shared" {
        return Err(GlanceError::forbidden("Only shared images have members."));
    }
    let owner = caller.is_admin || row.owner == caller.project_id;
    let members: Vec<Value> = row
        .members
        .iter()
        .filter(|(id, _)| owner || **id == caller.project_id)
        .map(|(id, m)| member_json(&row, id, m))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "members": members, "schema": "/v2/schemas/members" })))
}

async fn add(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("add_member")?;
    let id = path.into_inner();
    let member = body_field(&body, "member")?;
    images.owned(&caller, &id)?;
    images
        .run(
            &id,
            ImageCommand::AddMember {
                member_id: member.clone(),
            },
            &caller.metadata(&req),
        )
        .await?;
    let row = images.readable(&caller, &id)?;
    Ok(HttpResponse::Ok().json(member_json(&row, &member, &member_of(&row, &member)?)))
}

async fn show(
    images: web::Data<Images>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, GlanceError> {
    let (id, member) = path.into_inner();
    let row = images.readable(&caller, &id)?;
    if !(caller.is_admin || row.owner == caller.project_id || member == caller.project_id) {
        return Err(GlanceError::not_found(format!(
            "{member} is not a member of image {id}"
        )));
    }
    Ok(HttpResponse::Ok().json(member_json(&row, &member, &member_of(&row, &member)?)))
}

/// Only the member itself decides whether it accepts the image.
async fn set_status(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("modify_member")?;
    let (id, member) = path.into_inner();
    let status = body_field(&body, "status")?;
    let row = images.readable(&caller, &id)?;
    member_of(&row, &member)?;
    if member != caller.project_id && !caller.is_admin {
        return Err(GlanceError::forbidden(
            "Only the member may change its membership status.",
        ));
    }
    let cmd = ImageCommand::SetMemberStatus {
        member_id: member.clone(),
        status,
    };
    images.run(&id, cmd, &caller.metadata(&req)).await?;
    let row = images.readable(&caller, &id)?;
    Ok(HttpResponse::Ok().json(member_json(&row, &member, &member_of(&row, &member)?)))
}

async fn remove(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("delete_member")?;
    let (id, member) = path.into_inner();
    images.owned(&caller, &id)?;
    images
        .run(
            &id,
            ImageCommand::RemoveMember { member_id: member },
            &caller.metadata(&req),
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
