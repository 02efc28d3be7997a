//! The HTTP API: routes, errors as `{"error": "..."}` sentences, and the job endpoints.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Extension, Json, Router};
use futures_util::Stream;
use tokio_stream::wrappers::ReceiverStream;

use crate::durable;
use crate::hub::JobEvent;
use crate::params::{is_plain_file_name, JobParams};
use crate::retention::remove_job;
use crate::session::{auth_layer, session_layer, Session};
use crate::store::{now_ms, JobRecord, Origin, Status};
use crate::upload::{check_and_thumbnail, read_job_form, Upload};
use crate::view::{JobView, THUMBNAIL_FILE, UPLOAD_FILE};
use crate::worker::job_dir;
use crate::AppState;

type AppResult<T> = Result<T, ApiError>;

/// An error answer: the status and a sentence that says what to do.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// A failed write: a full disk says so (507), anything else is the server's fault.
    pub fn storage(what: &str, e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull {
            tracing::error!("could not {what}: {e}");
            Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "the server's disk is full: try again later (whoever runs it can free space or limit kept results with --keep-mb or --keep-days)",
            )
        } else {
            Self::internal(format!("could not {what}: {e}"))
        }
    }
    fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "no such job or file here (it may have been deleted, or it belongs to another browser session)",
        )
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!("{e}");
        Self::internal("the job store failed; the server log says why")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    // Room for the form's text fields next to the largest accepted image.
    let body_limit = state.config.max_upload_bytes + (64 << 10);
    Router::new()
        .route("/api/jobs", post(submit).get(list))
        .route("/api/jobs/{id}", get(job).delete(delete))
        .route("/api/jobs/{id}/events", get(events))
        .route("/api/jobs/{id}/cancel", post(cancel))
        .route("/api/jobs/{id}/files/{name}", get(file))
        .route("/api/prepare", post(crate::prepare::prepare))
        .route("/api/info", get(crate::status::info))
        .route("/api/weights", get(crate::weights::status))
        .route("/api/weights/download", post(crate::weights::download))
        .route("/api/openapi.json", get(crate::openapi::document))
        .route("/generate", post(crate::legacy::generate))
        .route("/outputs/{file}", get(crate::legacy::output))
        .route("/healthz", get(crate::status::healthz))
        .route("/readyz", get(crate::status::readyz))
        .route("/metrics", get(crate::status::metrics))
        .route("/login", get(crate::login::show).post(crate::login::submit))
        .fallback(crate::ui::asset)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(session_layer))
        .layer(middleware::from_fn_with_state(state.clone(), auth_layer))
        .layer(middleware::from_fn(crate::security::headers_layer))
        .with_state(state)
}

/// The job if this session may see it.
async fn owned(state: &AppState, session: &Session, id: &str) -> AppResult<JobRecord> {
    match state.store.get(id).await? {
        Some(job) if state.config.shared_history || job.session == session.0 => Ok(job),
        _ => Err(ApiError::not_found()),
    }
}

fn view(state: &AppState, job: &JobRecord) -> JobView {
    JobView::new(job, state.hub.position(&job.id))
}

fn queue_full(state: &AppState, waiting: usize) -> ApiError {
    state.metrics.rejected_full.inc();
    let retry = state.retry_after_secs();
    ApiError {
        retry_after: Some(retry),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("the queue is full ({waiting} jobs waiting): try again in about {retry} s"),
        )
    }
}

/// Checks and stores an upload as a new queued job.
pub async fn create_job(
    state: &Arc<AppState>,
    session: &Session,
    upload: Upload,
    params: JobParams,
    origin: Origin,
) -> AppResult<JobRecord> {
    if state.hub.depth() >= state.hub.limit() {
        return Err(queue_full(state, state.hub.depth()));
    }
    let limits = state.decode_limits();
    let image = upload.image.clone();
    let thumbnail = tokio::task::spawn_blocking(move || check_and_thumbnail(&image, &limits))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = job_dir(&state.config.outputs, &id);
    let write = async {
        tokio::fs::create_dir_all(&dir).await?;
        durable::write_async(dir.join(UPLOAD_FILE), upload.image.to_vec()).await?;
        durable::write_async(dir.join(THUMBNAIL_FILE), thumbnail).await
    };
    if let Err(e) = write.await {
        // Nothing half-stored stays behind.
        let _ = tokio::fs::remove_dir_all(&dir).await;
        return Err(ApiError::storage("store the upload", e));
    }
    let job = JobRecord {
        id: id.clone(),
        session: session.0.clone(),
        origin,
        status: Status::Queued,
        params,
        input_name: upload.file_name,
        created_ms: now_ms(),
        started_ms: None,
        finished_ms: None,
        error: None,
        result: None,
        bytes: 0,
        device: None,
    };
    state.store.insert(&job).await?;
    if let Err(full) = state.hub.submit(&id) {
        remove_job(state, &id).await?;
        return Err(queue_full(state, full.waiting));
    }
    Ok(job)
}

#[utoipa::path(post, path = "/api/jobs", tag = "jobs",
    request_body(content_type = "multipart/form-data", description = "`image` (the photo) and any JobParams fields as text"),
    responses((status = 202, body = JobView), (status = 400), (status = 413), (status = 415), (status = 429, description = "queue full; see Retry-After")))]
async fn submit(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    form: Multipart,
) -> AppResult<Response> {
    let (upload, params) = read_job_form(form).await?;
    let job = create_job(&state, &session, upload, params, Origin::Api).await?;
    let location = format!("/api/jobs/{}", job.id);
    let mut response = (StatusCode::ACCEPTED, Json(view(&state, &job))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/jobs", tag = "jobs",
    responses((status = 200, body = [JobView], description = "this session's jobs (everyone's with shared history), newest first")))]
async fn list(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
) -> AppResult<Json<Vec<JobView>>> {
    let who = (!state.config.shared_history).then_some(session.0.as_str());
    let jobs = state.store.list(who, 200).await?;
    Ok(Json(jobs.iter().map(|j| view(&state, j)).collect()))
}

#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs",
    responses((status = 200, body = JobView), (status = 404)))]
async fn job(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> AppResult<Json<JobView>> {
    let job = owned(&state, &session, &id).await?;
    Ok(Json(view(&state, &job)))
}

#[utoipa::path(delete, path = "/api/jobs/{id}", tag = "jobs",
    responses((status = 204, description = "deleted with its files (cancelled first if unfinished)"), (status = 404)))]
async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let job = owned(&state, &session, &id).await?;
    remove_job(&state, &job.id).await?;
    if let Some(live) = state.hub.live(&job.id) {
        if job.status == Status::Queued {
            live.send(JobEvent::Cancelled);
            state.hub.forget(&job.id);
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs",
    responses((status = 202, body = JobView, description = "cancelled, or cancelling at the next step if running"), (status = 404), (status = 409, description = "already finished")))]
async fn cancel(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> AppResult<(StatusCode, Json<JobView>)> {
    let job = owned(&state, &session, &id).await?;
    if job.status.is_finished() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("the job is already {}", job.status.as_str()),
        ));
    }
    if state.hub.unqueue(&id) {
        state
            .store
            .finish(&id, Status::Cancelled, None, None, 0)
            .await?;
        state.metrics.outcome("cancelled");
        if let Some(live) = state.hub.live(&id) {
            live.send(JobEvent::Cancelled);
        }
        state.hub.forget(&id);
    } else if let Some(live) = state.hub.live(&id) {
        // Running: the worker stops at the next step and records the cancellation.
        live.cancel.cancel();
    }
    let job = owned(&state, &session, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(view(&state, &job))))
}

fn final_event(state: &AppState, job: &JobRecord) -> Option<JobEvent> {
    match job.status {
        Status::Done => Some(JobEvent::Done {
            job: Box::new(view(state, job)),
        }),
        Status::Failed => Some(JobEvent::Failed {
            error: job.error.clone().unwrap_or_default(),
        }),
        Status::Cancelled => Some(JobEvent::Cancelled),
        Status::Queued | Status::Running => None,
    }
}

fn sse(event: &JobEvent) -> SseEvent {
    SseEvent::default()
        .event(event.name())
        .json_data(event)
        .unwrap_or_else(|_| SseEvent::default().event(event.name()))
}

#[utoipa::path(get, path = "/api/jobs/{id}/events", tag = "jobs",
    responses((status = 200, content_type = "text/event-stream", body = JobEvent,
        description = "Server-sent events named queued, started, stage, step, done, failed, cancelled; the current state first, the stream ends after the final one")))]
async fn events(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> AppResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    owned(&state, &session, &id).await?;
    // Subscribe before reading the record, so a change in between is not missed.
    let live = state.hub.live(&id);
    let mut rx = live.as_ref().map(|l| l.events.subscribe());
    let job = owned(&state, &session, &id).await?;
    let mut initial = Vec::new();
    if let Some(done) = final_event(&state, &job) {
        initial.push(done);
        rx = None;
    } else {
        if let Some(position) = state.hub.position(&id) {
            initial.push(JobEvent::Queued { position });
        }
        initial.extend(live.and_then(|l| l.last()));
    }
    let (tx, out) = tokio::sync::mpsc::channel(64);
    let mut shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        for e in initial {
            if tx.send(Ok(sse(&e))).await.is_err() {
                return;
            }
        }
        let Some(mut rx) = rx else { return };
        loop {
            let event = tokio::select! {
                e = rx.recv() => e,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            match event {
                Ok(e) => {
                    let last = e.is_final();
                    if tx.send(Ok(sse(&e))).await.is_err() || last {
                        return;
                    }
                }
                // Fell behind on step events: the next ones carry the current numbers.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(Sse::new(ReceiverStream::new(out)).keep_alive(KeepAlive::default()))
}

pub fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "glb" => "model/gltf-binary",
        "stl" => "model/stl",
        "3mf" => "model/3mf",
        "obj" => "model/obj",
        "ply" => "application/vnd.ply",
        "png" => "image/png",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// A file of a job's folder as a download.
pub async fn send_file(state: &AppState, job: &JobRecord, name: &str) -> AppResult<Response> {
    if !is_plain_file_name(name) {
        return Err(ApiError::not_found());
    }
    let path = job_dir(&state.config.outputs, &job.id).join(name);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::not_found())?;
    let stem = job
        .input_name
        .rsplit_once('.')
        .map_or(job.input_name.as_str(), |(s, _)| s);
    let safe_stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!("inline; filename=\"{safe_stem}_{name}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type(name).to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/jobs/{id}/files/{name}", tag = "jobs",
    responses((status = 200, description = "the file (mesh, report.json, input.png, prepared.png)"), (status = 404)))]
async fn file(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path((id, name)): Path<(String, String)>,
) -> AppResult<Response> {
    let job = owned(&state, &session, &id).await?;
    send_file(&state, &job, &name).await
}
