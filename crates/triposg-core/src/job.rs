//! One whole job: the user's image file -> framed object -> mesh.

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{DType, Device};
use triposg_image::{
    decode, prepare, DecodeLimits, ImageError, PrepOptions, PreparedImage, Rmbg, Segmenter,
};
use triposg_mesh::print::{
    prepare_for_print_cancellable, PrintError, PrintOptions, PrintResult, UpAxis,
};
use triposg_mesh::Mesh;

use crate::events::{Cancel, Event, Stage};
use crate::models::Models;
use crate::shape::{generate_shape, stage, JobError, ShapeParams};

/// BriaRMBG-1.4, loaded on first use: images with their own transparent cut-out never need it,
/// so a user without its weights (non-commercial licence) can still work with cut-outs.
pub struct LazyRmbg {
    dir: PathBuf,
    device: Device,
    loaded: OnceLock<Result<Rmbg, String>>,
}

impl LazyRmbg {
    /// `dir` is `<weights>/RMBG-1.4`. Upstream runs it in f32, so do we.
    pub fn new(dir: PathBuf, device: Device) -> Self {
        Self {
            dir,
            device,
            loaded: OnceLock::new(),
        }
    }
}

impl Segmenter for LazyRmbg {
    fn segment(&self, rgb: &[f32]) -> triposg_image::Result<Vec<f32>> {
        let rmbg = self.loaded.get_or_init(|| {
            Rmbg::load(&self.dir, DType::F32, &self.device).map_err(|e| {
                format!("background removal is needed for this image (it has no transparent background) but BriaRMBG-1.4 cannot be loaded: {e}")
            })
        });
        match rmbg {
            Ok(rmbg) => rmbg.segment(rgb),
            Err(msg) => Err(ImageError::Model(triposg_model::ModelError::InvalidInput(
                msg.clone(),
            ))),
        }
    }
}

pub struct JobOutput {
    pub prepared: PreparedImage,
    pub mesh: Mesh,
}

/// Decodes `bytes` within `limits` and frames the object: done once per photo, however many
/// shapes are then generated from it.
pub fn prepare_image(
    segmenter: &dyn Segmenter,
    bytes: &[u8],
    limits: &DecodeLimits,
    prep: &PrepOptions,
    mut on_event: impl FnMut(Event),
) -> Result<PreparedImage, JobError> {
    on_event(Event::StageStarted(Stage::Prepare));
    let start = std::time::Instant::now();
    let prepared = decode(bytes, limits).and_then(|image| prepare(&image, segmenter, prep))?;
    on_event(Event::StageFinished {
        stage: Stage::Prepare,
        elapsed: start.elapsed(),
    });
    Ok(prepared)
}

/// The whole job for one photo and one seed: [`prepare_image`] then [`generate_shape`].
#[allow(clippy::too_many_arguments)]
pub fn run_job(
    models: &Models,
    segmenter: &dyn Segmenter,
    bytes: &[u8],
    limits: &DecodeLimits,
    prep: &PrepOptions,
    params: &ShapeParams,
    cancel: &Cancel,
    mut on_event: impl FnMut(Event),
) -> Result<JobOutput, JobError> {
    params.validate()?;
    let prepared = prepare_image(segmenter, bytes, limits, prep, &mut on_event)?;
    let pixels = prepared.pixel_tensor(&models.device)?;
    let mesh = generate_shape(models, &pixels, params, cancel, on_event)?;
    Ok(JobOutput { prepared, mesh })
}

/// Print preparation of a generated mesh as one more stage: generated meshes are Y-up in model
/// units, whatever `opts.input_up` says. Stops with [`JobError::Cancelled`] soon after `cancel`
/// is set, even in the middle of the stage.
pub fn prepare_print_cancellable(
    mesh: &Mesh,
    opts: &PrintOptions,
    cancel: &Cancel,
    mut on_event: impl FnMut(Event),
) -> Result<PrintResult, JobError> {
    let opts = PrintOptions {
        input_up: UpAxis::Y,
        ..opts.clone()
    };
    stage(Stage::Print, &mut on_event, |_| {
        prepare_for_print_cancellable(mesh, &opts, &|| cancel.is_cancelled()).map_err(|e| match e {
            PrintError::Cancelled => JobError::Cancelled,
            e => JobError::Print(e),
        })
    })
}
