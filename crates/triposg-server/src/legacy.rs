//! The old app's interface, kept for existing scripts: `POST /generate` answers when the job
//! is done with `{glb, stl}` addresses under `/outputs/`.

use std::sync::Arc;

use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use tokio::sync::broadcast::error::RecvError;

use crate::api::{create_job, send_file, ApiError};
use crate::params::{mesh_file_name, JobParams};
use crate::session::Session;
use crate::store::{Origin, Status};
use crate::upload::read_form;
use crate::view::legacy_answer;
use crate::AppState;

/// Same form fields as the old app (`image`, `steps`, `guidance`, `seed`, `faces`, and the
/// solidify fields, accepted and ignored); blocks until the job ends, as the old app did.
#[utoipa::path(post, path = "/generate", tag = "compatibility",
    request_body(content_type = "multipart/form-data", description = "the old app's form: image, steps, guidance, seed, faces, solidify_enabled, solidify_pitch, solidify_smooth"),
    responses((status = 200, description = "{\"glb\": \"/outputs/ID.glb\", \"stl\": \"/outputs/ID.stl\"} once done"),
        (status = 400, description = "{\"error\": ...}"), (status = 429), (status = 500, description = "{\"error\": ...} when the job failed")))]
pub async fn generate(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    form: Multipart,
) -> Result<Json<serde_json::Value>, ApiError> {
    let upload = read_form(form, "image").await?;
    let mut params = JobParams::from_fields(&upload.fields).map_err(ApiError::bad_request)?;
    params.candidates = 1;
    // The old app made no print files; its scripts wait for the mesh alone.
    params.print = None;
    for needed in ["glb", "stl"] {
        if !params.formats.iter().any(|f| f == needed) {
            params.formats.push(needed.into());
        }
    }
    let job = create_job(&state, &session, upload, params, Origin::Generate).await?;
    let mut events = state.hub.live(&job.id).map(|l| l.events.subscribe());
    loop {
        let record = state
            .store
            .get(&job.id)
            .await?
            .ok_or_else(|| ApiError::new(StatusCode::GONE, "the job was deleted"))?;
        match record.status {
            Status::Done => return Ok(Json(legacy_answer(&job.id))),
            Status::Failed => return Err(ApiError::internal(record.error.unwrap_or_default())),
            Status::Cancelled => return Err(ApiError::internal("the job was cancelled")),
            Status::Queued | Status::Running => {}
        }
        let Some(rx) = events.as_mut() else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down; the job runs again after it restarts",
            ));
        };
        // Wait for the final event (or the end of the stream), then read the record again.
        loop {
            match rx.recv().await {
                Ok(e) if e.is_final() => break,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => {
                    events = None;
                    break;
                }
            }
        }
    }
}

/// `/outputs/<id>.<format>`: a `/generate` job's file, for whoever holds its unguessable id.
pub async fn output(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "no such output file");
    let (id, format) = file.split_once('.').ok_or_else(not_found)?;
    let job = state.store.get(id).await?.ok_or_else(not_found)?;
    if job.origin != Origin::Generate || job.status != Status::Done {
        return Err(not_found());
    }
    send_file(&state, &job, &mesh_file_name(job.params.seed, format)).await
}
