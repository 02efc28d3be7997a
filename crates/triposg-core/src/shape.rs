//! Prepared image -> mesh: DINOv2 tokens, CFG sampling from seeded noise, VAE key/values once,
//! octree SDF queries in large batches, iso-surface, cleanup and optional decimation.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use candle_core::Tensor;
use triposg_mesh::{Mesh, OctreeError, OctreeOptions, SdfSource};
use triposg_model::denoise::{denoise, initial_noise, DenoiseError};
use triposg_model::read_back::{Pending, ReadBack};
use triposg_model::vae::TripoSGVae;

use crate::events::{Cancel, Event, Stage};
use crate::models::Models;

/// The generation parameters of the old app's "Generation Options", plus the octree.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeParams {
    pub steps: usize,
    pub guidance: f32,
    pub seed: u64,
    /// Latent tokens (upstream 2048).
    pub num_tokens: usize,
    pub octree_depth: u32,
    /// Query points per VAE call: bounds the attention's working memory.
    pub query_batch: usize,
    /// Quadric decimation target; `None` keeps every face.
    pub max_faces: Option<usize>,
}

impl Default for ShapeParams {
    fn default() -> Self {
        Self {
            steps: 50,
            guidance: 7.0,
            seed: 42,
            num_tokens: 2048,
            octree_depth: 9,
            query_batch: 8192,
            max_faces: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cancelled")]
    Cancelled,
    #[error("the model found no surface in this image: try another seed, or a photo with one clearly separated object")]
    NoSurface,
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    #[error(transparent)]
    Image(#[from] triposg_image::ImageError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("print preparation failed: {0}")]
    Print(#[from] triposg_mesh::print::PrintError),
    /// An offloaded model rebuilt on the device for its stage.
    #[error(transparent)]
    Model(triposg_model::ModelError),
}

/// A device error while an offloaded model moves onto the device (out of memory, most likely)
/// is a device error like any other.
impl From<triposg_model::ModelError> for JobError {
    fn from(e: triposg_model::ModelError) -> Self {
        match e {
            triposg_model::ModelError::Candle(e) => Self::Candle(e),
            e => Self::Model(e),
        }
    }
}

impl ShapeParams {
    pub fn validate(&self) -> Result<(), JobError> {
        let bad = |m: String| Err(JobError::InvalidParams(m));
        if !(1..=200).contains(&self.steps) {
            return bad(format!("steps must be 1..=200, got {}", self.steps));
        }
        if !(self.guidance.is_finite() && (1.0..=30.0).contains(&self.guidance)) {
            return bad(format!("guidance must be 1..=30, got {}", self.guidance));
        }
        if !(7..=10).contains(&self.octree_depth) {
            return bad(format!(
                "octree depth must be 7..=10, got {}",
                self.octree_depth
            ));
        }
        if self.query_batch == 0 || self.num_tokens == 0 {
            return bad("query batch and token count must be positive".into());
        }
        if self.max_faces.is_some_and(|f| f < 4) {
            return bad("max faces must be at least 4".into());
        }
        Ok(())
    }
}

/// Times a stage and brackets it with start/finish events.
pub(crate) fn stage<T>(
    s: Stage,
    on_event: &mut impl FnMut(Event),
    f: impl FnOnce(&mut dyn FnMut(Event)) -> Result<T, JobError>,
) -> Result<T, JobError> {
    on_event(Event::StageStarted(s));
    let start = Instant::now();
    let out = f(on_event)?;
    on_event(Event::StageFinished {
        stage: s,
        elapsed: start.elapsed(),
    });
    Ok(out)
}

/// Generates the mesh of the object in `pixels` (`[1, 3, 224, 224]`, DINOv2-normalised).
pub fn generate_shape(
    models: &Models,
    pixels: &Tensor,
    params: &ShapeParams,
    cancel: &Cancel,
    mut on_event: impl FnMut(Event),
) -> Result<Mesh, JobError> {
    params.validate()?;
    let check = || {
        if cancel.is_cancelled() {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    };
    check()?;
    let cond = stage(Stage::Encode, &mut on_event, |_| {
        let dinov2 = models.dinov2()?;
        Ok(dinov2.forward(&pixels.to_device(&models.device)?)?)
    })?;
    check()?;
    let latents = stage(Stage::Denoise, &mut on_event, |emit| {
        let dit = models.dit()?;
        let schedule = models
            .scheduler
            .schedule(params.steps)
            .map_err(JobError::InvalidParams)?;
        let channels = dit.config().in_channels;
        let noise = initial_noise(
            params.seed,
            (1, params.num_tokens, channels),
            models.dtype,
            &models.device,
        )?;
        denoise(&dit, &schedule, &cond, noise, params.guidance, |p, _| {
            emit(Event::Progress {
                stage: Stage::Denoise,
                done: p.step,
                total: p.total,
            });
            if cancel.is_cancelled() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .map_err(|e| match e {
            DenoiseError::Cancelled(_) => JobError::Cancelled,
            DenoiseError::Candle(e) => JobError::Candle(e),
        })
    })?;
    check()?;
    // Upstream's open surface at the box for now: closing it moved vertices outside the
    // +-1.005 bounds the job promises (core test); `triposg prep` closes meshes instead.
    let options = OctreeOptions {
        depth: params.octree_depth,
        batch_size: params.query_batch,
        close_at_bounds: false,
        ..Default::default()
    };
    // The mesh of the finest level is begun during its decode (CPU beside the GPU); the
    // surface stage is what is left of it, and the cleanup.
    let (refinement, surface) = stage(Stage::Decode, &mut on_event, |emit| {
        let vae = models.vae()?;
        let kv = vae.kv_tokens(&latents)?;
        let source = VaeSource {
            vae: &vae,
            kv: &kv,
            read_back: ReadBack::new(),
            check: &check,
            emit,
            done: 0,
            times: DecodeTimes::default(),
        };
        let refinement = triposg_mesh::refine_with_surface(&options, source);
        refinement.map_err(|e| match e {
            OctreeError::Query(e) => e,
            other => JobError::InvalidParams(other.to_string()),
        })
    })?;
    check()?;
    stage(Stage::Surface, &mut on_event, |_| {
        let mut mesh = surface.finish(&refinement);
        mesh.cleanup(triposg_mesh::DEFAULT_MIN_COMPONENT_FRACTION);
        if mesh.faces.is_empty() {
            return Err(JobError::NoSurface);
        }
        if let Some(max) = params.max_faces {
            if mesh.faces.len() > max {
                mesh.simplify(max, 0.01);
            }
        }
        Ok(mesh)
    })
}

/// The VAE as the octree's sample source: each batch's values are read back while the device
/// computes the next batch.
struct VaeSource<'a, C, E> {
    vae: &'a TripoSGVae,
    kv: &'a Tensor,
    read_back: ReadBack,
    check: &'a C,
    emit: E,
    done: usize,
    times: DecodeTimes,
}

/// Where a decode's host time went, logged at debug level when it ends.
#[derive(Default)]
struct DecodeTimes {
    batches: usize,
    /// Preparing and queueing batches on the device.
    queueing: Duration,
    /// Waiting for batches' values.
    waited: Duration,
    /// The octree's own work from one collected batch to the next submitted: preparing
    /// points, and between levels choosing the next level's samples. The GPU idles where
    /// this outlasts what is left of the batch it is working on (none at a level change).
    between: Duration,
    longest_between: [Duration; 4],
    collected_at: Option<Instant>,
}

impl DecodeTimes {
    fn submitting(&mut self, start: Instant) {
        if let Some(collected) = self.collected_at.take() {
            let gap = start - collected;
            self.between += gap;
            let shortest = self.longest_between.iter_mut().min().expect("four");
            *shortest = (*shortest).max(gap);
        }
    }

    fn collected(&mut self, waiting_since: Instant) {
        let now = Instant::now();
        self.waited += now - waiting_since;
        self.collected_at = Some(now);
        self.batches += 1;
    }
}

impl<C, E> SdfSource for VaeSource<'_, C, E>
where
    C: Fn() -> Result<(), JobError>,
    E: FnMut(Event),
{
    type Error = JobError;
    type Pending = Pending;

    fn submit(&mut self, points: &[[f32; 3]]) -> Result<Pending, JobError> {
        (self.check)()?;
        let start = Instant::now();
        self.times.submitting(start);
        let n = points.len();
        let flat: Vec<f32> = points.iter().flatten().copied().collect();
        let points = Tensor::from_vec(flat, (1, n, 3), self.vae.device())?;
        let sdf = self.vae.query(self.kv, &points)?;
        let pending = self.read_back.start(&sdf)?;
        self.times.queueing += start.elapsed();
        Ok(pending)
    }

    fn collect(&mut self, pending: Pending) -> Result<Vec<f32>, JobError> {
        let start = Instant::now();
        let values = pending.wait()?;
        self.times.collected(start);
        self.done += values.len();
        // The octree's total is unknown until its last level: report points decoded.
        (self.emit)(Event::Progress {
            stage: Stage::Decode,
            done: self.done,
            total: 0,
        });
        Ok(values)
    }
}

impl<C, E> Drop for VaeSource<'_, C, E> {
    fn drop(&mut self) {
        let t = &self.times;
        tracing::debug!(
            points = self.done,
            batches = t.batches,
            queueing_s = t.queueing.as_secs_f64(),
            waited_s = t.waited.as_secs_f64(),
            between_s = t.between.as_secs_f64(),
            longest_between_ms = ?t.longest_between.map(|d| d.as_secs_f64() * 1e3),
            "decode finished"
        );
    }
}
