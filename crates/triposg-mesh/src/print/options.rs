//! What the user can ask of print preparation, with the defaults of issue 5.

use super::printers::Printer;
use super::PrintError;
use crate::mesh::Mesh;

/// Which axis of the input points up. Generated meshes, glTF and OBJ are Y-up; STL and 3MF
/// files are Z-up by convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpAxis {
    Y,
    Z,
}

/// Target size in millimetres, reached by one uniform scale (measured before any cut or base).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeSpec {
    LongestSide(f64),
    /// Along Z, after orientation.
    Height(f64),
    /// Along X (width).
    X(f64),
    /// Along Y (depth).
    Y(f64),
    /// The largest size that fits this box.
    Fit([f64; 3]),
    /// The input's units are already millimetres.
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Orientation {
    /// As photographed: the model's up stays up.
    Upright,
    /// The resting orientation with the least overhang and the most bed contact.
    LayFlat,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SolidMode {
    /// Keep the surface; repair it if needed, remesh through voxels only if repair fails.
    Repair,
    /// The old app's "solidify": always remesh through a voxel grid of `pitch_mm` (default
    /// longest side / 200, at least 0.1 mm, coarser where the surface would pass half a
    /// million faces), then `smoothing` Taubin passes.
    Solidify {
        pitch_mm: Option<f64>,
        smoothing: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Technology {
    Fdm,
    Resin,
}

impl Technology {
    /// Thinnest wall that prints reliably: a 0.4 mm nozzle lays two lines; resin cures 0.4 mm.
    pub fn default_min_wall_mm(self) -> f64 {
        match self {
            Self::Fdm => 0.8,
            Self::Resin => 0.4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseShape {
    Round,
    Rectangle,
}

/// A plinth fused under the (cut) model.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BaseSpec {
    pub shape: BaseShape,
    pub height_mm: f64,
    /// Diameter (round) or X and Y (rectangle); `None`: the cut's footprint plus
    /// [`BaseSpec::DEFAULT_MARGIN_MM`] on every side.
    pub size_mm: Option<[f64; 2]>,
}

impl BaseSpec {
    pub const DEFAULT_MARGIN_MM: f64 = 3.0;
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DrainHoles {
    pub count: u32,
    pub diameter_mm: f64,
}

/// Hollowing for resin printers.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct HollowSpec {
    pub wall_mm: f64,
    pub drain_holes: Option<DrainHoles>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PrintOptions {
    pub input_up: UpAxis,
    pub size: SizeSpec,
    pub orientation: Orientation,
    pub solid: SolidMode,
    /// Flat-bottom cut this many mm above the lowest point; the part below is removed.
    /// A base without a cut cuts at [`PrintOptions::BASE_CUT_FRACTION`] of the height.
    pub cut_height_mm: Option<f64>,
    pub base: Option<BaseSpec>,
    pub hollow: Option<HollowSpec>,
    pub technology: Technology,
    /// Thinnest acceptable wall; default by technology.
    pub min_wall_mm: Option<f64>,
    /// FDM infill, 0..=1.
    pub infill: f64,
    pub printer: Option<&'static Printer>,
    /// Scale down uniformly when the model does not fit the printer.
    pub fit_to_printer: bool,
}

impl Default for PrintOptions {
    fn default() -> Self {
        Self {
            input_up: UpAxis::Y,
            size: SizeSpec::LongestSide(100.0),
            orientation: Orientation::Upright,
            solid: SolidMode::Repair,
            cut_height_mm: None,
            base: None,
            hollow: None,
            technology: Technology::Fdm,
            min_wall_mm: None,
            infill: 0.15,
            printer: None,
            fit_to_printer: false,
        }
    }
}

/// Cells across the longest side of the default voxel remesh, as the old app's pitch 0.01 on
/// its 2-unit box.
const DEFAULT_REMESH_CELLS: f64 = 200.0;
/// Finest default remesh pitch: 0.1 mm is what FDM layers and resin pixels resolve at best.
const MIN_REMESH_PITCH_MM: f64 = 0.1;
/// Faces a default remesh may make. Marching cubes gives about three faces per pitch^2 of
/// surface, so an intricate surface (large area in a small box) gets a coarser pitch.
const MAX_REMESH_FACES: f64 = 500_000.0;
const FACES_PER_PITCH_SQUARED: f64 = 3.0;

impl PrintOptions {
    /// Flat-bottom cut for a base when none is given: enough for a flat face to fuse with.
    pub const BASE_CUT_FRACTION: f64 = 0.02;

    pub fn min_wall(&self) -> f64 {
        self.min_wall_mm
            .unwrap_or_else(|| self.technology.default_min_wall_mm())
    }

    pub fn validate(&self) -> Result<(), PrintError> {
        let bad = |m: String| Err(PrintError::InvalidOption(m));
        let positive = |x: f64| x.is_finite() && x > 0.0;
        let size_ok = match self.size {
            SizeSpec::LongestSide(x) | SizeSpec::Height(x) | SizeSpec::X(x) | SizeSpec::Y(x) => {
                positive(x)
            }
            SizeSpec::Fit(b) => b.iter().all(|&x| positive(x)),
            SizeSpec::Keep => true,
        };
        if !size_ok {
            return bad(format!(
                "size must be a positive number of mm: {:?}",
                self.size
            ));
        }
        if let SolidMode::Solidify {
            pitch_mm: Some(p), ..
        } = self.solid
        {
            if !positive(p) {
                return bad(format!("solidify pitch must be positive mm, got {p}"));
            }
        }
        if let SolidMode::Solidify { smoothing, .. } = self.solid {
            if smoothing > 50 {
                return bad(format!("at most 50 smoothing passes, got {smoothing}"));
            }
        }
        if self.cut_height_mm.is_some_and(|c| !positive(c)) {
            return bad("cut height must be a positive number of mm above the lowest point".into());
        }
        if let Some(base) = &self.base {
            if !positive(base.height_mm)
                || base
                    .size_mm
                    .is_some_and(|s| !s.iter().all(|&x| positive(x)))
            {
                return bad(format!(
                    "base height and size must be positive mm: {base:?}"
                ));
            }
        }
        if let Some(h) = &self.hollow {
            if !positive(h.wall_mm) {
                return bad(format!(
                    "wall thickness must be positive mm, got {}",
                    h.wall_mm
                ));
            }
            if let Some(d) = h.drain_holes {
                if !(1..=16).contains(&d.count) || !positive(d.diameter_mm) {
                    return bad(format!(
                        "drain holes: 1..=16 holes of a positive diameter, got {} x {} mm",
                        d.count, d.diameter_mm
                    ));
                }
            }
        }
        if self.min_wall_mm.is_some_and(|w| !positive(w)) {
            return bad("minimum wall must be positive mm".into());
        }
        if !(0.0..=1.0).contains(&self.infill) {
            return bad(format!("infill is a fraction 0..=1, got {}", self.infill));
        }
        if self.fit_to_printer && self.printer.is_none() {
            return bad("fitting to a printer needs a printer".into());
        }
        Ok(())
    }

    pub(crate) fn effective_cut(&self, mesh: &Mesh) -> Option<f64> {
        self.cut_height_mm.or_else(|| {
            self.base.map(|_| {
                let height = mesh.bbox().map_or(0.0, |b| b.size()[2] as f64);
                height * Self::BASE_CUT_FRACTION
            })
        })
    }
}

impl SolidMode {
    /// Pitch (mm) and smoothing passes of a voxel remesh of `mesh`.
    pub(crate) fn remesh_parameters(&self, mesh: &Mesh) -> (f64, u32) {
        let longest = mesh
            .bbox()
            .map_or(1.0, |b| b.size().iter().fold(0f32, |m, &x| m.max(x)) as f64);
        let default = (longest / DEFAULT_REMESH_CELLS)
            .max(MIN_REMESH_PITCH_MM)
            .max((FACES_PER_PITCH_SQUARED * mesh.area() / MAX_REMESH_FACES).sqrt());
        match *self {
            Self::Solidify {
                pitch_mm,
                smoothing,
            } => (pitch_mm.unwrap_or(default), smoothing),
            Self::Repair => (default, 0),
        }
    }
}
