//! Token validation for every service's requests: the `X-Auth-Token` header checked by the identity
//! service (`strata_identity::tokens`), whose types are re-exported here.

pub use strata_identity::tokens::*;

/// Validate the request's `X-Auth-Token` against the identity state shared with every service's app.
pub fn authenticate(req: &actix_web::HttpRequest) -> Result<AuthContext, AuthError> {
    let token = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Missing)?;
    let identity = req
        .app_data::<actix_web::web::Data<crate::identity::Identity>>()
        .ok_or(AuthError::Invalid("no identity state"))?;
    let view = identity.view.snapshot();
    validate(&identity.tokens, &view, token)
}
