//! `GET /api/v1/tokens/{id}/deliveries`: a token's recent deliveries,
//! newest first.

use std::sync::Arc;

use warp::http::StatusCode;
use warp::reply::Response;

use super::json::{DeliveriesQuery, DeliveryView};
use super::ops;
use crate::App;
use crate::auth::Principal;
use crate::error::HttpError;

/// Lists the deliveries.
pub async fn handle(
    app: Arc<App>,
    principal: Principal,
    id: String,
    query: DeliveriesQuery,
) -> Result<Response, HttpError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(HttpError::BadRequest(
            "limit must be between 1 and 100".into(),
        ));
    }
    let token = ops::visible(&app, &principal, &id).await?;
    let records = app
        .store
        .recent_deliveries(&token.id, i64::from(limit))
        .await
        .map_err(ops::database)?;
    let datagrepper = app.config.web.datagrepper_url.as_deref();
    let views: Vec<_> = records
        .iter()
        .map(|r| DeliveryView::new(r, datagrepper))
        .collect();
    Ok(super::reply(StatusCode::OK, &views))
}
