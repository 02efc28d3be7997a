//! The page's "download the weights" button: `triposg download`'s code on a blocking thread,
//! one download at a time, its progress kept here for the page to poll.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use triposg_weights::Progress;

use crate::api::ApiError;
use crate::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DownloadStatus {
    #[default]
    Idle,
    Running,
    Done,
    Failed,
}

/// Where the download stands.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct DownloadState {
    pub status: DownloadStatus,
    /// The hub repository being fetched.
    pub repo: Option<String>,
    /// Bytes of that repository's needed files, and how many are in place.
    pub repo_bytes: u64,
    pub repo_done: u64,
    /// The file being transferred and its bytes so far.
    pub file: Option<String>,
    pub file_done: u64,
    pub file_total: u64,
    /// What went wrong, with what to do, when failed.
    pub error: Option<String>,
}

impl DownloadState {
    fn apply(&mut self, event: Progress) {
        match event {
            Progress::Repo { repo, bytes, .. } => {
                self.repo = Some(repo);
                self.repo_bytes = bytes;
                self.repo_done = 0;
                self.file = None;
            }
            Progress::Present { bytes, .. } | Progress::Finished { bytes, .. } => {
                self.repo_done += bytes;
                self.file = None;
                self.file_done = 0;
                self.file_total = 0;
            }
            Progress::Started { file, bytes } => {
                self.file = Some(file);
                self.file_done = 0;
                self.file_total = bytes.unwrap_or(0);
            }
            Progress::Bytes { done, total, .. } => {
                self.file_done = done;
                self.file_total = total;
            }
            Progress::Replacing { .. } | Progress::Offline { .. } => {}
        }
    }
}

#[derive(Default)]
pub struct WeightsDownload(Arc<Mutex<DownloadState>>);

fn lock(m: &Mutex<DownloadState>) -> MutexGuard<'_, DownloadState> {
    // Plain data, consistent after any single update: go on after a panic elsewhere.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WeightsView {
    /// The TripoSG weights load (checked from their headers).
    pub ready: bool,
    pub problems: Vec<String>,
    pub folder: String,
    pub download: DownloadState,
}

async fn view(state: &AppState) -> WeightsView {
    let folder = state.config.weights.clone();
    let problems = tokio::task::spawn_blocking(move || triposg_weights::problems(&folder))
        .await
        .unwrap_or_else(|e| vec![e.to_string()]);
    WeightsView {
        ready: problems.is_empty(),
        problems,
        folder: state.config.weights.display().to_string(),
        download: lock(&state.weights_download.0).clone(),
    }
}

#[utoipa::path(get, path = "/api/weights", tag = "weights",
    responses((status = 200, body = WeightsView)))]
pub async fn status(State(state): State<Arc<AppState>>) -> Json<WeightsView> {
    Json(view(&state).await)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DownloadQuery {
    /// Leave out BriaRMBG-1.4 (non-commercial licence; only photos without a transparent
    /// background need it).
    #[serde(default)]
    skip_rmbg: bool,
}

/// Starts fetching the weights from the Hugging Face hub into the server's weights folder
/// (resumable, sizes and sha256 checked, commit pinned), as `triposg download` does. A server
/// without an access token takes this only from its own machine.
#[utoipa::path(post, path = "/api/weights/download", tag = "weights", params(DownloadQuery),
    responses((status = 202, body = WeightsView, description = "started; poll GET /api/weights"),
        (status = 403, description = "asked from another machine of a server without --auth-token"),
        (status = 409, description = "a download is already running")))]
pub async fn download(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<DownloadQuery>,
) -> Result<(StatusCode, Json<WeightsView>), ApiError> {
    if state.config.auth_token.is_none() && !peer.ip().is_loopback() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "downloading the weights is an administrator's action: run `triposg download` on the server, or start it with --auth-token to allow it from this page",
        ));
    }
    {
        let mut current = lock(&state.weights_download.0);
        if current.status == DownloadStatus::Running {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "the weights are already downloading: follow GET /api/weights",
            ));
        }
        *current = DownloadState {
            status: DownloadStatus::Running,
            ..Default::default()
        };
    }
    let progress = state.weights_download.0.clone();
    let folder = state.config.weights.clone();
    let opts = triposg_weights::Options {
        update: false,
        skip_rmbg: query.skip_rmbg,
        endpoint: state.config.hub_endpoint.clone(),
    };
    tokio::task::spawn_blocking(move || {
        let outcome = triposg_weights::download(&folder, &opts, &mut |e| lock(&progress).apply(e));
        let mut done = lock(&progress);
        match outcome {
            Ok(()) => done.status = DownloadStatus::Done,
            Err(e) => {
                tracing::warn!("weights download: {e:#}");
                done.status = DownloadStatus::Failed;
                done.error = Some(format!("{e:#}"));
            }
        }
    });
    Ok((StatusCode::ACCEPTED, Json(view(&state).await)))
}
