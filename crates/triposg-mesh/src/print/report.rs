//! The printability report: what was done to the mesh and what the printed part will be.

use std::fmt;

use super::intersect::{self_intersections, SelfIntersections};
use super::measure;
use super::options::{BaseSpec, Orientation, PrintOptions};
use super::{PrintError, Stop};
use crate::mesh::Mesh;

/// FDM shell thickness (mm) in the material estimate: two 0.45 mm perimeters, about what
/// four 0.2 mm top/bottom layers add too.
pub const FDM_SHELL_MM: f64 = 0.9;
pub const FILAMENT_DIAMETER_MM: f64 = 1.75;

/// (name, density g/cm^3, FDM?) of the materials estimated.
const MATERIALS: [(&str, f64, bool); 3] = [
    ("PLA", 1.24, true),
    ("PETG", 1.27, true),
    ("resin", 1.10, false),
];

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RepairReport {
    /// Faces of an input above [`super::repair::MAX_PRINT_FACES`], decimated to that first.
    pub decimated_from: Option<usize>,
    pub welded_vertices: usize,
    pub degenerate_faces: usize,
    pub duplicate_faces: usize,
    pub floaters_removed: usize,
    pub floater_faces: usize,
    /// Edges where more than two faces met, and vertices where surfaces touched at a point,
    /// cut apart into separate sheets.
    pub non_manifold_edges_split: usize,
    pub non_manifold_vertices_split: usize,
    pub flipped_faces: usize,
    pub holes_filled: usize,
    pub faces_added: usize,
    /// Why the surface could not be repaired in place (then it was remeshed).
    pub remaining_problem: Option<String>,
    pub remeshed: Option<String>,
}

impl RepairReport {
    pub fn changed_anything(&self) -> bool {
        *self != Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OrientationReport {
    pub mode: Orientation,
    /// The model-frame direction (Z up) that now points at the bed.
    pub down: [f64; 3],
    pub candidates: usize,
    /// Overhang (> 45 degrees) and bed-contact area as fractions of the surface.
    pub overhang_fraction: f64,
    pub contact_fraction: f64,
    pub upright_overhang_fraction: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HollowReport {
    pub wall_mm: f64,
    pub pitch_mm: f64,
    pub cavity_volume_cm3: f64,
    /// Centres (X, Y, mm, before placement) of the drain holes made.
    pub drain_holes: Vec<[f64; 2]>,
    pub drain_diameter_mm: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stability {
    pub centre_of_mass_mm: [f64; 3],
    /// Convex hull of the points touching the bed.
    pub footprint_area_mm2: f64,
    /// Distance from the centre of mass (seen from above) to the footprint's edge; negative
    /// outside it.
    pub margin_mm: f64,
    /// Tilt at which the centre of mass passes the footprint's edge.
    pub tip_angle_deg: f64,
    pub stable: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MaterialEstimate {
    pub material: &'static str,
    pub density_g_cm3: f64,
    /// Infill for FDM (shell of [`FDM_SHELL_MM`] plus infill of the rest); none for resin.
    pub infill: Option<f64>,
    pub printed_volume_cm3: f64,
    pub grams: f64,
    /// 1.75 mm filament, FDM only.
    pub filament_m: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PrinterFit {
    pub printer: &'static str,
    pub name: &'static str,
    pub build_volume_mm: [f64; 3],
    pub fits: bool,
    /// It fits only turned a quarter turn on the bed.
    pub turn_90_degrees: bool,
    /// The factor it was scaled by to fit.
    pub auto_scale: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PrintReport {
    pub tool: String,
    pub options: PrintOptions,
    pub input_faces: usize,
    pub faces: usize,
    pub vertices: usize,
    pub watertight: bool,
    pub manifold: bool,
    pub self_intersections: SelfIntersections,
    /// Positive enclosed volume (faces point out).
    pub outward: bool,
    pub shells: usize,
    pub repairs: RepairReport,
    pub orientation: OrientationReport,
    /// Overall uniform scale from input units to millimetres.
    pub scale: f64,
    pub bbox_mm: [f64; 3],
    pub volume_cm3: f64,
    pub surface_area_cm2: f64,
    /// Downward faces steeper than 45 degrees from vertical, not on the bed.
    pub overhang_area_cm2: f64,
    pub thinnest_wall_mm: Option<f64>,
    pub min_wall_mm: f64,
    /// Share of the sampled surface where the wall is thinner than `min_wall_mm`.
    pub thin_wall_percent: f64,
    pub stability: Stability,
    pub cut_height_mm: Option<f64>,
    pub base: Option<BaseSpec>,
    pub hollow: Option<HollowReport>,
    pub materials: Vec<MaterialEstimate>,
    pub printer: Option<PrinterFit>,
    pub warnings: Vec<String>,
}

pub(crate) struct Context<'a> {
    pub opts: &'a PrintOptions,
    pub input_faces: usize,
    pub repairs: RepairReport,
    pub orientation: OrientationReport,
    pub scale: f64,
    pub cut_height: Option<f64>,
    pub hollow: Option<HollowReport>,
    pub printer_fit: Option<PrinterFit>,
    pub warnings: Vec<String>,
    /// The self-intersection test's result for these faces, where it already ran.
    pub crossings: Option<SelfIntersections>,
}

pub(crate) fn build(mesh: &Mesh, cx: Context, stop: Stop) -> Result<PrintReport, PrintError> {
    let topology = mesh.topology();
    let volume_mm3 = mesh.volume();
    let area_mm2 = mesh.area();
    let shells = mesh
        .face_components()
        .iter()
        .max()
        .map_or(0, |&m| m as usize + 1);
    let overhang = super::orient::score(mesh, [0.0, 0.0, -1.0]).overhang;
    let thickness = measure::wall_thickness(mesh);
    let min_wall = cx.opts.min_wall();
    // Folds from +0.0: an empty f64 sum is -0.0, which prints as "-0.0%".
    let sampled = thickness.iter().fold(0.0, |s, t| s + t.1);
    let thin = thickness
        .iter()
        .filter(|t| t.0 < min_wall)
        .fold(0.0, |s, t| s + t.1);
    let thinnest = thickness.iter().map(|t| t.0).reduce(f64::min);
    let stability = measure::stability(mesh);
    let mut warnings = cx.warnings;
    if !topology.is_closed_manifold() {
        warnings.push("the mesh is not a closed manifold: slicers may fail or guess".into());
    }
    stop.check()?;
    let crossings = match cx.crossings {
        Some(known) => known,
        None => self_intersections(mesh, stop)?,
    };
    if crossings.any() {
        warnings.push(format!(
            "{} pairs of faces pass through each other: slicers may fill or drop regions there; try --solidify",
            crossings.pairs
        ));
    }
    if let Some(reason) = &cx.repairs.remeshed {
        warnings.push(format!("surface rebuilt through voxels: {reason}"));
    }
    if thin > 0.0 {
        warnings.push(format!(
            "walls thinner than {min_wall} mm on {:.1}% of the surface: scale up or thicken them",
            100.0 * thin / sampled
        ));
    }
    if !stability.stable {
        warnings.push(if stability.footprint_area_mm2 <= 0.0 {
            "it touches the bed at a point or line only: cut a flat bottom, add a base or lay it flat".into()
        } else {
            "it tips over when tilted by less than 5 degrees: add a base, cut a flat bottom or lay it flat".to_string()
        });
    }
    if let Some(fit) = &cx.printer_fit {
        if !fit.fits {
            warnings.push(format!(
                "it does not fit the {} build volume: scale it down or use --fit-printer",
                fit.name
            ));
        }
    }
    let shell_mm3 = (area_mm2 * FDM_SHELL_MM).min(volume_mm3);
    let filament_area = std::f64::consts::PI * (FILAMENT_DIAMETER_MM / 2.0).powi(2);
    let materials = MATERIALS
        .iter()
        .map(|&(material, density, fdm)| {
            let printed = if fdm {
                shell_mm3 + cx.opts.infill * (volume_mm3 - shell_mm3)
            } else {
                volume_mm3
            };
            MaterialEstimate {
                material,
                density_g_cm3: density,
                infill: fdm.then_some(cx.opts.infill),
                printed_volume_cm3: printed / 1000.0,
                grams: printed / 1000.0 * density,
                filament_m: fdm.then_some(printed / filament_area / 1000.0),
            }
        })
        .collect();
    Ok(PrintReport {
        tool: format!("triposg {}", env!("CARGO_PKG_VERSION")),
        options: cx.opts.clone(),
        input_faces: cx.input_faces,
        faces: mesh.faces.len(),
        vertices: mesh.vertices.len(),
        watertight: topology.is_watertight(),
        manifold: topology.is_closed_manifold(),
        self_intersections: crossings,
        outward: volume_mm3 > 0.0,
        shells,
        repairs: cx.repairs,
        orientation: cx.orientation,
        scale: cx.scale,
        bbox_mm: super::placement::size(mesh),
        volume_cm3: volume_mm3 / 1000.0,
        surface_area_cm2: area_mm2 / 100.0,
        overhang_area_cm2: overhang / 100.0,
        thinnest_wall_mm: thinnest,
        min_wall_mm: min_wall,
        thin_wall_percent: if sampled > 0.0 {
            100.0 * thin / sampled
        } else {
            0.0
        },
        stability,
        cut_height_mm: cx.cut_height,
        base: cx.opts.base,
        hollow: cx.hollow,
        materials,
        printer: cx.printer_fit,
        warnings,
    })
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

impl fmt::Display for PrintReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [x, y, z] = self.bbox_mm;
        writeln!(f, "Print report ({})", self.tool)?;
        writeln!(
            f,
            "  size            {x:.2} x {y:.2} x {z:.2} mm (X x Y x Z), scale x{:.4}",
            self.scale
        )?;
        writeln!(
            f,
            "  solid           watertight {}, manifold {}, outward {}, {} shell(s), {} faces",
            yes(self.watertight),
            yes(self.manifold),
            yes(self.outward),
            self.shells,
            self.faces
        )?;
        let crossings = &self.self_intersections;
        writeln!(
            f,
            "  crossings       {}{} pairs of faces pass through each other",
            if crossings.complete { "" } else { "at least " },
            crossings.pairs
        )?;
        let r = &self.repairs;
        if r.changed_anything() {
            writeln!(
                f,
                "  repairs         welded {} vertices, dropped {} degenerate + {} duplicate faces and {} floaters ({} faces), split {} non-manifold edges and {} vertices, flipped {} faces, filled {} holes ({} faces)",
                r.welded_vertices, r.degenerate_faces, r.duplicate_faces, r.floaters_removed, r.floater_faces, r.non_manifold_edges_split, r.non_manifold_vertices_split, r.flipped_faces, r.holes_filled, r.faces_added
            )?;
            if let Some(faces) = r.decimated_from {
                writeln!(
                    f,
                    "                  decimated from {faces} to at most {} faces first",
                    super::repair::MAX_PRINT_FACES
                )?;
            }
            if let Some(remesh) = &r.remeshed {
                writeln!(f, "                  {remesh}")?;
            }
        }
        let o = &self.orientation;
        match o.mode {
            Orientation::Upright => writeln!(f, "  orientation     upright, as photographed")?,
            Orientation::LayFlat => writeln!(
                f,
                "  orientation     laid flat on the side facing ({:.2}, {:.2}, {:.2}), best of {} candidates: overhang {:.1}% of the surface (upright {:.1}%), bed contact {:.1}%",
                o.down[0], o.down[1], o.down[2], o.candidates, 100.0 * o.overhang_fraction, 100.0 * o.upright_overhang_fraction, 100.0 * o.contact_fraction
            )?,
        }
        if let Some(c) = self.cut_height_mm {
            writeln!(
                f,
                "  cut             flat bottom {c:.2} mm above the lowest point"
            )?;
        }
        if let Some(b) = &self.base {
            writeln!(
                f,
                "  base            {:?}, {:.1} mm high",
                b.shape, b.height_mm
            )?;
        }
        if let Some(h) = &self.hollow {
            writeln!(
                f,
                "  hollow          {:.2} mm walls (voxel pitch {:.3} mm), cavity {:.2} cm3, {} drain hole(s)",
                h.wall_mm, h.pitch_mm, h.cavity_volume_cm3, h.drain_holes.len()
            )?;
        }
        writeln!(
            f,
            "  volume / area   {:.2} cm3, surface {:.2} cm2, overhang {:.2} cm2",
            self.volume_cm3, self.surface_area_cm2, self.overhang_area_cm2
        )?;
        match self.thinnest_wall_mm {
            Some(t) => writeln!(
                f,
                "  walls           thinnest {t:.2} mm (minimum {:.2} mm), {:.1}% of the surface below it",
                self.min_wall_mm, self.thin_wall_percent
            )?,
            None => writeln!(f, "  walls           not measured")?,
        }
        let s = &self.stability;
        writeln!(
            f,
            "  stability       {}: footprint {:.1} mm2, centre of mass {:.1} mm {} its edge at {:.1} mm high, tips at {:.0} degrees",
            if s.stable { "stable" } else { "UNSTABLE" },
            s.footprint_area_mm2,
            s.margin_mm.abs(),
            if s.margin_mm >= 0.0 { "inside" } else { "outside" },
            s.centre_of_mass_mm[2],
            s.tip_angle_deg
        )?;
        for m in &self.materials {
            match (m.filament_m, m.infill) {
                (Some(length), Some(infill)) => writeln!(
                    f,
                    "  {:<15} {:.1} g, {:.2} m of {FILAMENT_DIAMETER_MM} mm filament at {:.0}% infill",
                    m.material, m.grams, length, 100.0 * infill
                )?,
                _ => writeln!(f, "  {:<15} {:.1} g ({:.1} ml)", m.material, m.grams, m.printed_volume_cm3)?,
            }
        }
        if let Some(p) = &self.printer {
            let fit = match (p.fits, p.auto_scale, p.turn_90_degrees) {
                (_, Some(k), _) => format!("fits after scaling x{k:.3}"),
                (true, None, true) => "fits turned 90 degrees".into(),
                (true, None, false) => "fits".into(),
                (false, ..) => "does NOT fit".into(),
            };
            let [bx, by, bz] = p.build_volume_mm;
            writeln!(
                f,
                "  printer         {} ({bx} x {by} x {bz} mm): {fit}",
                p.name
            )?;
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        Ok(())
    }
}
