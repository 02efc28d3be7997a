//! One worker per device: takes the next job from the shared queue, runs the model on a
//! blocking thread (candle is synchronous), streams its progress and records the outcome.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{DType, Device};
use triposg_core::residency::Resident;
use triposg_core::{
    generate_shape, prepare_image, prepare_print_cancellable, Cancel, Event, JobError, LazyRmbg,
    Models, ShapeParams, Stage,
};
use triposg_image::PrepOptions;
use triposg_mesh::print::{write_outputs, PrintMetadata};
use triposg_mesh::Mesh;

use crate::hub::{JobEvent, Live};
use crate::memory::{out_of_memory, query_batch};
use crate::params::{mesh_file_name, print_stem};
use crate::print::{PrintParams, PrintSummary};
use crate::store::{now_ms, Candidate, JobRecord, JobResult, Status};
use crate::view::{JobView, PREPARED_FILE, REPORT_FILE, UPLOAD_FILE};
use crate::AppState;

/// A device and the models resident on it.
pub struct DeviceSlot {
    pub name: String,
    pub device: Device,
    pub dtype: DType,
    pub models: Resident<Models>,
    pub rmbg: Resident<LazyRmbg>,
}

impl DeviceSlot {
    pub fn rmbg(&self, weights: &Path) -> triposg_core::residency::InUse<'_, LazyRmbg> {
        let acquired: Result<_, std::convert::Infallible> = self
            .rmbg
            .acquire(|| Ok(LazyRmbg::new(weights.join("RMBG-1.4"), self.device.clone())));
        match acquired {
            Ok(rmbg) => rmbg,
            Err(never) => match never {},
        }
    }
}

enum Failure {
    Cancelled,
    Failed(String),
}

impl From<JobError> for Failure {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Cancelled => Self::Cancelled,
            JobError::Candle(e) => Self::Failed(out_of_memory(&e).unwrap_or_else(|| e.to_string())),
            e => Self::Failed(e.to_string()),
        }
    }
}

fn stage_name(stage: Stage) -> String {
    format!("{stage:?}").to_lowercase()
}

/// Runs the job on this thread: prepare the photo once, then one shape per seed, each saved in
/// every asked-for format. Returns what came out.
fn execute(
    state: &AppState,
    slot: &DeviceSlot,
    job: &JobRecord,
    dir: &Path,
    live: &Live,
) -> Result<JobResult, Failure> {
    let params = &job.params;
    let query_batch = query_batch(
        state.config.memory_limit,
        &state.config.weights,
        &slot.device,
        slot.dtype,
        state.config.placement,
        &params.shape(params.seed),
    )
    .map_err(Failure::Failed)?;
    let candidates = params.candidates;
    let current = Cell::new(1);
    let stage_seconds = RefCell::new(BTreeMap::<String, f64>::new());
    let mut on_event = |e: Event| match e {
        Event::StageStarted(s) => live.send(JobEvent::Stage {
            stage: stage_name(s),
            candidate: current.get(),
            candidates,
        }),
        Event::Progress { stage, done, total } => live.send(JobEvent::Step {
            stage: stage_name(stage),
            done,
            total,
            candidate: current.get(),
            candidates,
        }),
        Event::StageFinished { stage, elapsed } => {
            let name = stage_name(stage);
            state
                .metrics
                .stage_seconds
                .get_or_create(&crate::metrics::StageLabel {
                    stage: name.clone(),
                })
                .observe(elapsed.as_secs_f64());
            *stage_seconds.borrow_mut().entry(name).or_default() += elapsed.as_secs_f64();
        }
    };
    let io = |what: &str, e: &dyn std::fmt::Display| {
        Failure::Failed(format!("the server could not {what}: {e}"))
    };
    let bytes = std::fs::read(dir.join(UPLOAD_FILE)).map_err(|e| io("read the upload", &e))?;
    let prep = PrepOptions {
        margin: params.margin,
    };
    let prepared = {
        let rmbg = slot.rmbg(&state.config.weights);
        prepare_image(&*rmbg, &bytes, &state.decode_limits(), &prep, &mut on_event)?
    };
    let mut png = Vec::new();
    prepared
        .image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| io("encode the prepared image", &e))?;
    // Served while the job runs, so never half-written.
    crate::durable::write(&dir.join(PREPARED_FILE), &png)
        .map_err(|e| io("save the prepared image", &e))?;
    check(&live.cancel)?;
    let models = slot
        .models
        .acquire(|| {
            Models::load(
                &state.config.weights,
                &slot.device,
                slot.dtype,
                state.config.placement,
            )
        })
        .map_err(|e| {
            Failure::Failed(out_of_memory(&e).unwrap_or_else(|| format!(
                "the TripoSG weights could not be loaded ({e}); run `triposg check-weights` on the server to see what is wrong, or `triposg download`"
            )))
        })?;
    let pixels = prepared
        .pixel_tensor(&models.device)
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let mut done = Vec::new();
    for seed in params.seeds() {
        let mesh = generate_shape(
            &models,
            &pixels,
            &ShapeParams {
                query_batch,
                ..params.shape(seed)
            },
            &live.cancel,
            &mut on_event,
        )?;
        let started = Instant::now();
        let (files, closed) = mesh.closed_manifold_beside(|| {
            let names: Vec<String> = params
                .formats
                .iter()
                .map(|format| mesh_file_name(seed, format))
                .collect();
            let paths: Vec<PathBuf> = names.iter().map(|name| dir.join(name)).collect();
            for (written, name) in triposg_mesh::save_each(&mesh, &paths)
                .into_iter()
                .zip(&names)
            {
                written.map_err(|e| io(&format!("write {name}"), &e))?;
            }
            Ok::<_, Failure>(names)
        });
        let files = files?;
        *stage_seconds.borrow_mut().entry("save".into()).or_default() +=
            started.elapsed().as_secs_f64();
        let mut candidate = Candidate {
            seed,
            faces: mesh.faces.len(),
            vertices: mesh.vertices.len(),
            closed,
            size: mesh.bbox().map(|b| b.size()).unwrap_or_default(),
            files,
            print_files: Vec::new(),
            print: None,
            print_error: None,
        };
        if let Some(print) = &params.print {
            match print_files(job, seed, &mesh, print, dir, &live.cancel, &mut on_event) {
                Ok((files, summary)) => {
                    candidate.print_files = files;
                    candidate.print = Some(summary);
                }
                // The raw mesh is still worth having; the page shows why there is no print.
                Err(Failure::Failed(e)) => candidate.print_error = Some(e),
                Err(cancelled) => return Err(cancelled),
            }
        }
        check(&live.cancel)?;
        done.push(candidate);
        current.set(current.get() + 1);
    }
    Ok(JobResult {
        candidates: done,
        stage_seconds: stage_seconds.into_inner(),
    })
}

/// Print preparation of one candidate, written as `seed<N>_print.{stl,3mf,glb,report.json}`.
fn print_files(
    job: &JobRecord,
    seed: u64,
    mesh: &Mesh,
    print: &PrintParams,
    dir: &Path,
    cancel: &Cancel,
    on_event: &mut impl FnMut(Event),
) -> Result<(Vec<String>, PrintSummary), Failure> {
    // Checked when the job was submitted; a stored job from an older server may still fail.
    let opts = print.options().map_err(Failure::Failed)?;
    let result = prepare_print_cancellable(mesh, &opts, cancel, on_event)?;
    let stem = print_stem(seed);
    let meta = PrintMetadata {
        name: job
            .input_name
            .rsplit_once('.')
            .map_or(job.input_name.as_str(), |(s, _)| s)
            .to_string(),
        source_image: Some(job.input_name.clone()),
        seed: Some(seed),
        generation: Some(serde_json::json!({
            "steps": job.params.steps,
            "guidance": job.params.guidance,
            "seed": seed,
            "octree_depth": job.params.octree_depth,
            "num_tokens": job.params.num_tokens,
            "max_faces": job.params.max_faces,
            "margin": job.params.margin,
        })),
    };
    let written = write_outputs(&result, dir, &stem, &meta)
        .map_err(|e| Failure::Failed(format!("the server could not write the print files: {e}")))?;
    let files = [written.stl, written.three_mf, written.glb, written.report]
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    Ok((files, PrintSummary::from(&result.report)))
}

fn check(cancel: &Cancel) -> Result<(), Failure> {
    if cancel.is_cancelled() {
        Err(Failure::Cancelled)
    } else {
        Ok(())
    }
}

/// Total size of the files in a job's folder.
pub fn folder_bytes(dir: &Path) -> i64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len() as i64)
        .sum()
}

pub fn job_dir(outputs: &Path, id: &str) -> PathBuf {
    outputs.join("jobs").join(id)
}

/// The worker loop of one device, until shutdown.
pub async fn run(state: Arc<AppState>, slot: Arc<DeviceSlot>) {
    state.workers_up.fetch_add(1, Ordering::SeqCst);
    let mut shutdown = state.shutdown.clone();
    loop {
        let id = tokio::select! {
            id = state.hub.next() => id,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        if let Err(e) = run_one(&state, &slot, &id).await {
            tracing::error!("job {id}: {e}");
        }
    }
    state.workers_up.fetch_sub(1, Ordering::SeqCst);
}

async fn run_one(
    state: &Arc<AppState>,
    slot: &Arc<DeviceSlot>,
    id: &str,
) -> crate::store::Result<()> {
    let Some(live) = state.hub.live(id) else {
        return Ok(());
    };
    let Some(job) = state.store.get(id).await? else {
        state.hub.forget(id);
        return Ok(());
    };
    let started = now_ms();
    let running = || state.store.start(id, started, &slot.name);
    if !persist(state, id, "mark it running", running).await {
        return Ok(());
    }
    live.send(JobEvent::Started {
        device: slot.name.clone(),
    });
    state.metrics.running.inc();
    let dir = job_dir(&state.config.outputs, id);
    let outcome = {
        let (state, slot, live, job, dir) = (
            state.clone(),
            slot.clone(),
            live.clone(),
            job.clone(),
            dir.clone(),
        );
        tokio::task::spawn_blocking(move || execute(&state, &slot, &job, &dir, &live))
            .await
            .unwrap_or_else(|e| Err(Failure::Failed(format!("the job crashed: {e}"))))
    };
    state.metrics.running.dec();
    // The live state stays registered until the record is final, so that a subscriber arriving
    // meanwhile either finds it running (and gets the final event) or finds it finished.
    let record = || record_outcome(state, id, &dir, &job, started, &outcome, &live);
    persist(state, id, "record its outcome", record).await;
    state.hub.forget(id);
    Ok(())
}

/// Repeats a write to the job store until it succeeds, so that a full disk under the store
/// leaves no job "running" (or a taken job unrun) until the next start: once space is back the
/// job gets its real outcome. Stops trying when the server stops (false); the start-up recovery
/// then finds the job as it was.
async fn persist<F: std::future::Future<Output = crate::store::Result<()>>>(
    state: &AppState,
    id: &str,
    what: &str,
    mut write: impl FnMut() -> F,
) -> bool {
    let mut delay = Duration::from_millis(200);
    let mut shutdown = state.shutdown.clone();
    loop {
        match write().await {
            Ok(()) => return true,
            Err(e) => {
                tracing::error!("job {id}: could not {what} ({e}); trying again in {delay:?}");
                state.metrics.store_write_retries.inc();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|stop| *stop) => return false,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn record_outcome(
    state: &Arc<AppState>,
    id: &str,
    dir: &Path,
    job: &JobRecord,
    started: i64,
    outcome: &Result<JobResult, Failure>,
    live: &Live,
) -> crate::store::Result<()> {
    if state.store.get(id).await?.is_none() {
        // Deleted while running: its files go too.
        let _ = tokio::fs::remove_dir_all(dir).await;
        return Ok(());
    }
    let shutting_down = *state.shutdown.borrow();
    let event = match outcome {
        Err(Failure::Cancelled) if shutting_down => {
            // Interrupted by shutdown, not by the user: run it again after the restart.
            state.store.requeue(id).await?;
            return Ok(());
        }
        Ok(result) => {
            let bytes = folder_bytes(dir);
            state
                .store
                .finish(id, Status::Done, None, Some(result), bytes)
                .await?;
            let record = state.store.get(id).await?.unwrap_or_else(|| job.clone());
            let view = JobView::new(&record, None);
            if let Ok(report) = serde_json::to_vec_pretty(&view) {
                let _ = crate::durable::write_async(dir.join(REPORT_FILE), report).await;
            }
            state.record_duration(now_ms() - started);
            state.metrics.outcome("done");
            JobEvent::Done {
                job: Box::new(view),
            }
        }
        Err(Failure::Cancelled) => {
            state
                .store
                .finish(id, Status::Cancelled, None, None, folder_bytes(dir))
                .await?;
            state.metrics.outcome("cancelled");
            JobEvent::Cancelled
        }
        Err(Failure::Failed(error)) => {
            tracing::warn!("job {id} failed: {error}");
            state
                .store
                .finish(
                    id,
                    Status::Failed,
                    Some(error.clone()),
                    None,
                    folder_bytes(dir),
                )
                .await?;
            state.metrics.outcome("failed");
            JobEvent::Failed {
                error: error.clone(),
            }
        }
    };
    live.send(event);
    Ok(())
}
