//! The TripoSG web app behind `triposg serve`: jobs persisted in a store, one worker per device
//! taking them from one bounded queue, live progress over SSE, the old app's `/generate`, and
//! the embedded UI.

mod api;
pub mod config;
mod durable;
mod gpu;
mod hub;
mod legacy;
mod login;
pub mod memory;
mod metrics;
mod openapi;
pub mod params;
mod prepare;
mod print;
mod recovery;
mod retention;
mod security;
mod session;
mod status;
pub mod store;
mod ui;
mod upload;
mod view;
mod weights;
mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use triposg_core::residency::Resident;
use triposg_image::DecodeLimits;
use triposg_model::device::{default_dtype, parse_dtype, select_device};

pub use config::Config;
use hub::Hub;
use metrics::Metrics;
use store::Store;
pub use upload::read_job_form_body;
use worker::DeviceSlot;

pub struct AppState {
    pub config: Config,
    store: Store,
    hub: Hub,
    devices: Vec<Arc<DeviceSlot>>,
    metrics: Metrics,
    shutdown: watch::Receiver<bool>,
    workers_up: AtomicUsize,
    /// Moving average of finished jobs' durations, for Retry-After.
    avg_job_ms: AtomicI64,
    weights_download: weights::WeightsDownload,
}

impl AppState {
    fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_bytes: self.config.max_upload_bytes as u64,
            max_dimension: self.config.max_image_side,
            ..DecodeLimits::default()
        }
    }

    fn record_duration(&self, ms: i64) {
        let old = self.avg_job_ms.load(Ordering::Relaxed);
        let new = if old == 0 { ms } else { (old * 3 + ms) / 4 };
        self.avg_job_ms.store(new, Ordering::Relaxed);
        self.metrics.job_seconds.observe(ms as f64 / 1000.0);
    }

    /// Seconds until a place in the queue is likely to free up.
    fn retry_after_secs(&self) -> u64 {
        let avg = self.avg_job_ms.load(Ordering::Relaxed);
        let per_job = if avg > 0 { avg as u64 / 1000 } else { 60 };
        (per_job / self.devices.len().max(1) as u64).clamp(1, 3600)
    }
}

/// A server accepting connections; dropping it does not stop it, [`RunningServer::shutdown`]
/// does.
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    state: Arc<AppState>,
    http: Option<JoinHandle<std::io::Result<()>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Drop for RunningServer {
    /// A server dropped without [`RunningServer::shutdown`] (a failed test, say) still stops its
    /// jobs, so that no model run outlives it.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.state.hub.cancel_all();
    }
}

impl RunningServer {
    /// Stops taking requests, cancels running jobs (they run again after a restart), ends
    /// live streams and waits for the workers.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.state.hub.cancel_all();
        for w in std::mem::take(&mut self.workers) {
            let _ = w.await;
        }
        if let Some(http) = self.http.take() {
            http.await.context("HTTP server task")??;
        }
        self.state.store.close().await;
        Ok(())
    }
}

fn device_slots(config: &Config) -> anyhow::Result<Vec<Arc<DeviceSlot>>> {
    config
        .devices
        .iter()
        .map(|name| {
            let device = select_device(name)?;
            let dtype = match &config.dtype {
                Some(d) => parse_dtype(d)?,
                None => default_dtype(&device),
            };
            Ok(Arc::new(DeviceSlot {
                name: name.clone(),
                device,
                dtype,
                models: Resident::new(config.residency),
                rmbg: Resident::new(config.residency),
            }))
        })
        .collect()
}

/// Starts everything and binds the port; returns once it accepts connections.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    let jobs_dir = config.outputs.join("jobs");
    std::fs::create_dir_all(&jobs_dir)
        .with_context(|| format!("creating the outputs folder {}", jobs_dir.display()))?;
    let devices = device_slots(&config)?;
    let store = Store::connect(&config.database_url())
        .await
        .with_context(|| format!("opening the job store {}", config.database_url()))?;
    let hub = Hub::new(config.queue_limit);
    recovery::recover(&store, &hub, &config.outputs).await?;
    let addr: SocketAddr = tokio::net::lookup_host((config.host.as_str(), config.port))
        .await
        .with_context(|| format!("resolving --host {}", config.host))?
        .next()
        .with_context(|| format!("--host {} resolves to no address", config.host))?;
    if !addr.ip().is_loopback() && config.auth_token.is_none() {
        tracing::warn!(
            "listening on {addr} without --auth-token: anyone who can reach this address can use the GPU and read shared results"
        );
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} (is another server already on this port?)"))?;
    let addr = listener.local_addr()?;
    let (stop, shutdown) = watch::channel(false);
    let state = Arc::new(AppState {
        config,
        store,
        hub,
        devices,
        metrics: Metrics::default(),
        shutdown,
        workers_up: AtomicUsize::new(0),
        avg_job_ms: AtomicI64::new(0),
        weights_download: Default::default(),
    });
    let workers = state
        .devices
        .iter()
        .map(|slot| tokio::spawn(worker::run(state.clone(), slot.clone())))
        .collect();
    tokio::spawn(housekeeping(state.clone()));
    let app = api::router(state.clone());
    let mut stopped = state.shutdown.clone();
    let http = tokio::spawn(async move {
        // Peer addresses let the weights download refuse other machines when there is no token.
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await
    });
    tracing::info!("listening on http://{addr}");
    Ok(RunningServer {
        addr,
        stop,
        state,
        http: Some(http),
        workers,
    })
}

/// Unloads idle models and applies retention, until shutdown.
async fn housekeeping(state: Arc<AppState>) {
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        for slot in &state.devices {
            if slot.models.unload_if_idle() | slot.rmbg.unload_if_idle() {
                tracing::info!("models on {} unloaded after being idle", slot.name);
            }
        }
        // Retention every 10 minutes, and once right after start.
        if ticks.is_multiple_of(120) {
            if let Err(e) = retention::apply(&state).await {
                tracing::error!("retention: {e}");
            }
        }
        ticks += 1;
    }
}
