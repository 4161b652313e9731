//! Actix extractors: a handler that takes [`Authed`] only runs for a live session, one
//! that takes [`CsrfChecked`] only for a live session whose CSRF token matched.

use super::{check_csrf, Session, Sessions};
use crate::http::ApiError;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

/// The caller's live session.
pub struct Authed(pub Session);

/// The caller's live session, for a state-changing request (CSRF token checked).
pub struct CsrfChecked(pub Session);

async fn session_of(req: &HttpRequest) -> Result<Session, ApiError> {
    let sessions = req
        .app_data::<web::Data<Sessions>>()
        .ok_or_else(|| ApiError::internal("sessions are not configured on this listener"))?;
    sessions
        .of_request(req)
        .await
        .ok_or_else(|| ApiError::unauthorized("not logged in"))
}

impl FromRequest for Authed {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { session_of(&req).await.map(Authed) })
    }
}

impl FromRequest for CsrfChecked {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let s = session_of(&req).await?;
            check_csrf(&req, &s)?;
            Ok(CsrfChecked(s))
        })
    }
}
