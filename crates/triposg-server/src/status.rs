//! What the server reports about itself: health for orchestrators, metrics for Prometheus,
//! and `/api/info` for the UI.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::metrics::DeviceLabel;
use crate::AppState;

/// The process is alive and answering.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "ok")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The words of the readiness problem that the weights are the problem.
const WEIGHTS_MISSING: &str = "are missing or incomplete";

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// What stands in the way, with what to do.
    pub problems: Vec<String>,
}

async fn readiness(state: &AppState) -> Readiness {
    let weights = state.config.weights.clone();
    let mut problems = tokio::task::spawn_blocking(move || triposg_weights::problems(&weights))
        .await
        .unwrap_or_else(|e| vec![e.to_string()]);
    if !problems.is_empty() {
        problems.push(format!(
            "the weights in {} {WEIGHTS_MISSING}: download them from the page, or run `triposg download` or `triposg check-weights`",
            state.config.weights.display()
        ));
    }
    let up = state.workers_up.load(Ordering::SeqCst);
    if up < state.devices.len() {
        problems.push(format!("{up} of {} workers running", state.devices.len()));
    }
    if *state.shutdown.borrow() {
        problems.push("shutting down".into());
    }
    Readiness {
        ready: problems.is_empty(),
        problems,
    }
}

/// Weights present and complete, and every worker running.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let r = readiness(&state).await;
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let m = &state.metrics;
    m.queue_depth.set(state.hub.depth() as i64);
    for slot in &state.devices {
        let label = DeviceLabel {
            device: slot.name.clone(),
        };
        m.models_loaded
            .get_or_create(&label)
            .set(slot.models.is_loaded() as i64);
        if let Some(memory) = crate::gpu::memory(&slot.device) {
            m.gpu_used_bytes
                .get_or_create(&label)
                .set(memory.used_bytes as i64);
            m.gpu_total_bytes
                .get_or_create(&label)
                .set(memory.total_bytes as i64);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceInfo {
    pub name: String,
    pub dtype: String,
    pub models_loaded: bool,
    /// GPU memory of the card; null on a CPU device (or a build without CUDA).
    pub memory: Option<crate::gpu::Memory>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PrinterInfo {
    pub id: &'static str,
    pub name: &'static str,
    /// X, Y, Z in mm.
    pub build_volume_mm: [f64; 3],
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Info {
    pub version: String,
    pub model: String,
    pub weights: String,
    pub ready: bool,
    /// The TripoSG weights are complete (when not, `POST /api/weights/download` fetches them).
    pub weights_ready: bool,
    pub problems: Vec<String>,
    pub devices: Vec<DeviceInfo>,
    pub residency: String,
    /// Models wait in host memory and each is copied to the device for its stage (`--offload`).
    pub offload: bool,
    pub queue_depth: usize,
    pub queue_limit: usize,
    pub shared_history: bool,
    pub max_upload_bytes: usize,
    /// Whether print preparation (size in mm, orientation, base, hollowing) is available.
    pub print_options: bool,
    /// Printers whose build volume the fit check knows (the `printer` job parameter).
    pub printers: Vec<PrinterInfo>,
}

#[utoipa::path(get, path = "/api/info", tag = "operations", responses((status = 200, body = Info)))]
pub async fn info(State(state): State<Arc<AppState>>) -> Json<Info> {
    let r = readiness(&state).await;
    let weights_ready = !r.problems.iter().any(|p| p.contains(WEIGHTS_MISSING));
    Json(Info {
        version: env!("CARGO_PKG_VERSION").into(),
        model: "TripoSG (VAST-AI/TripoSG) with BriaRMBG-1.4 background removal".into(),
        weights: state.config.weights.display().to_string(),
        ready: r.ready,
        weights_ready,
        problems: r.problems,
        devices: state
            .devices
            .iter()
            .map(|d| DeviceInfo {
                name: d.name.clone(),
                dtype: format!("{:?}", d.dtype).to_lowercase(),
                models_loaded: d.models.is_loaded(),
                memory: crate::gpu::memory(&d.device),
            })
            .collect(),
        residency: state.config.residency.to_string(),
        offload: state.config.placement == triposg_core::Placement::Offload,
        queue_depth: state.hub.depth(),
        queue_limit: state.hub.limit(),
        shared_history: state.config.shared_history,
        max_upload_bytes: state.config.max_upload_bytes,
        print_options: true,
        printers: triposg_mesh::print::PRINTERS
            .iter()
            .map(|p| PrinterInfo {
                id: p.id,
                name: p.name,
                build_volume_mm: p.build_volume_mm,
            })
            .collect(),
    })
}
