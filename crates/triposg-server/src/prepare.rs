//! `POST /api/prepare`: the cut-out the model would get, before any GPU time is spent on it.

use std::io::Cursor;
use std::sync::Arc;

use axum::extract::{Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use triposg_core::prepare_image;
use triposg_image::PrepOptions;

use crate::api::ApiError;
use crate::params::JobParams;
use crate::upload::{image_error, read_form};
use crate::AppState;

#[utoipa::path(post, path = "/api/prepare", tag = "jobs",
    request_body(content_type = "multipart/form-data", description = "`image` and optionally `margin`"),
    responses((status = 200, content_type = "image/png", description = "the framed cut-out on white, as the model sees it"),
        (status = 400), (status = 413), (status = 415), (status = 422, description = "no object found in the photo")))]
pub async fn prepare(
    State(state): State<Arc<AppState>>,
    form: Multipart,
) -> Result<Response, ApiError> {
    let upload = read_form(form, "image").await?;
    let params = JobParams::from_fields(&upload.fields).map_err(ApiError::bad_request)?;
    let png = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        // Background removal runs on the first device, beside its worker.
        let slot = &state.devices[0];
        let rmbg = slot.rmbg(&state.config.weights);
        let prep = PrepOptions {
            margin: params.margin,
        };
        let prepared = prepare_image(&*rmbg, &upload.image, &state.decode_limits(), &prep, |_| {})
            .map_err(|e| match e {
                triposg_core::JobError::Image(e) => image_error(e),
                e => ApiError::internal(e.to_string()),
            })?;
        let mut png = Vec::new();
        prepared
            .image
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(png)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}
