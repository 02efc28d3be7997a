//! Print preparation: any mesh in, a closed solid in millimetres out, Z up, resting on the
//! bed, with a printability report. One entry point, [`prepare_for_print`]; [`export`] writes
//! the result as STL, 3MF and GLB.
//!
//! Order of the steps, and why: repair first (it changes what the size is measured on), then
//! orientation (which axis is "height" depends on it), then scale, then an optional voxel
//! remesh in millimetres, then cut, base and hollowing (all specified in millimetres of the
//! final model), then placement on the bed and the printer fit, then the report.

mod base;
mod cut;
pub mod export;
mod hollow;
mod intersect;
mod measure;
mod options;
mod orient;
mod parse;
mod placement;
pub mod printers;
mod raycast;
mod repair;
mod report;
mod sdf;
mod solidify;

pub use export::{write_outputs, OutputFiles, PrintMetadata};
pub use intersect::SelfIntersections;
pub use options::{
    BaseShape, BaseSpec, DrainHoles, HollowSpec, Orientation, PrintOptions, SizeSpec, SolidMode,
    Technology, UpAxis,
};
pub use parse::{parse_base_size, parse_mm, parse_printer};
pub use printers::{Printer, PRINTERS};
pub use report::{
    HollowReport, MaterialEstimate, OrientationReport, PrintReport, PrinterFit, RepairReport,
    Stability,
};

use crate::mesh::Mesh;

/// The prepared solid and what was done to it.
#[derive(Debug, Clone)]
pub struct PrintResult {
    /// Millimetres, Z up, centred on X/Y, lowest point at Z = 0, outward-facing closed solid.
    pub mesh: Mesh,
    pub report: PrintReport,
}

#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("the mesh has no triangles: nothing to print")]
    Empty,
    #[error("the mesh has non-finite vertex coordinates (NaN or infinity): re-export it from the modelling tool")]
    NonFinite,
    #[error("invalid print option: {0}")]
    InvalidOption(String),
    #[error("could not make a closed solid: {0}")]
    NotSolid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("cancelled")]
    Cancelled,
}

/// The caller's wish to stop, asked between the steps of print preparation and inside its
/// long loops (per face), so that a cancelled job lets go of the cores within a fraction of
/// a second instead of at the end of the stage.
#[derive(Clone, Copy)]
pub(crate) struct Stop<'a>(&'a (dyn Fn() -> bool + Sync));

impl Stop<'_> {
    pub(crate) fn requested(self) -> bool {
        (self.0)()
    }

    pub(crate) fn check(self) -> Result<(), PrintError> {
        if self.requested() {
            Err(PrintError::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
pub(crate) const NEVER: Stop<'static> = Stop(&|| false);

/// Turns `mesh` into a printable solid as `opts` asks.
pub fn prepare_for_print(mesh: &Mesh, opts: &PrintOptions) -> Result<PrintResult, PrintError> {
    prepare_for_print_cancellable(mesh, opts, &|| false)
}

/// [`prepare_for_print`] that gives up with [`PrintError::Cancelled`] soon after
/// `is_cancelled` (asked from several threads) says so.
pub fn prepare_for_print_cancellable(
    mesh: &Mesh,
    opts: &PrintOptions,
    is_cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<PrintResult, PrintError> {
    let stop = Stop(is_cancelled);
    opts.validate()?;
    check_input(mesh)?;
    stop.check()?;
    let mut warnings = Vec::new();
    let mut work = placement::to_z_up(mesh, opts.input_up);
    let (mut repairs, crossings) =
        repair::repair(&mut work, opts.solid == SolidMode::Repair, stop)?;
    if work.faces.is_empty() {
        return Err(PrintError::NotSolid(
            "nothing encloses a volume: the mesh is only degenerate faces, flat sheets or floaters"
                .into(),
        ));
    }
    stop.check()?;
    let orientation = orient::orient(&mut work, opts.orientation);
    let mut scale = placement::scale_to(&mut work, opts.size)?;
    let remesh_reason = match opts.solid {
        SolidMode::Solidify { .. } => Some("solidify was requested".to_string()),
        SolidMode::Repair => repairs.remaining_problem.clone(),
    };
    if let Some(reason) = remesh_reason {
        let (pitch, smoothing) = opts.solid.remesh_parameters(&work);
        let remeshed = solidify::solidify(&work, pitch, smoothing, stop)?;
        work = remeshed.mesh;
        repairs.remeshed = Some(format!(
            "voxel remesh at {:.3} mm pitch, {smoothing} smoothing passes ({reason})",
            remeshed.pitch
        ));
        // The remesh moves the surface by a fraction of a voxel: size again.
        scale *= placement::scale_to(&mut work, opts.size)?;
    }
    stop.check()?;
    let cut_height = opts.effective_cut(&work);
    if let Some(height) = cut_height {
        let bottom = work.bbox().expect("non-empty").min[2] as f64;
        let section = cut::cut_open(&mut work, bottom + height)?;
        match &opts.base {
            Some(spec) => base::add_base(&mut work, &section, spec)?,
            None => cut::cap(&mut work, &section)?,
        }
    }
    let hollow = match &opts.hollow {
        Some(spec) => Some(hollow::hollow(&mut work, spec, &mut warnings, stop)?),
        None => None,
    };
    stop.check()?;
    // The repair's crossing test saw these very faces unless a remesh, cut or hollow rebuilt
    // them since. Turning, scaling and moving the solid (affine maps) keep every crossing, up
    // to the f32 rounding of the moved vertices (which can only matter where faces touch), so
    // the report need not run the test again: on 500k faces and 2 cores it was a third of this
    // function. What carries over always found no crossing: one found leads to a remesh.
    let crossings = crossings
        .filter(|_| repairs.remeshed.is_none() && cut_height.is_none() && hollow.is_none());
    let t = work.topology();
    if !t.is_closed_manifold() || work.volume() <= 0.0 {
        return Err(PrintError::NotSolid(format!(
            "the result is not a closed outward solid ({t:?}): try --solidify"
        )));
    }
    placement::place_on_bed(&mut work);
    let printer_fit = opts
        .printer
        .map(|printer| placement::fit_printer(&mut work, printer, opts.fit_to_printer));
    if let Some(fit) = &printer_fit {
        if let Some(factor) = fit.auto_scale {
            scale *= factor;
        }
    }
    let report = report::build(
        &work,
        report::Context {
            opts,
            input_faces: mesh.faces.len(),
            repairs,
            orientation,
            scale,
            cut_height,
            hollow,
            printer_fit,
            warnings,
            crossings,
        },
        stop,
    )?;
    Ok(PrintResult { mesh: work, report })
}

fn check_input(mesh: &Mesh) -> Result<(), PrintError> {
    if mesh.faces.is_empty() {
        return Err(PrintError::Empty);
    }
    if mesh.vertices.iter().flatten().any(|x| !x.is_finite()) {
        return Err(PrintError::NonFinite);
    }
    if let Some(&v) = mesh
        .faces
        .iter()
        .flatten()
        .find(|&&v| v as usize >= mesh.vertices.len())
    {
        return Err(PrintError::InvalidOption(format!(
            "face index {v} but the mesh has {} vertices",
            mesh.vertices.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
