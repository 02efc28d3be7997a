//! Axes, size and position: the model frame to the slicer's (Z up, millimetres, centred on
//! X/Y, resting on Z = 0).

use super::options::{SizeSpec, UpAxis};
use super::printers::Printer;
use super::report::PrinterFit;
use super::PrintError;
use crate::mesh::Mesh;

/// A Y-up model seen from its front (+Z towards the viewer) becomes Z-up with its front
/// towards -Y, where slicers put the viewer: (x, y, z) -> (x, -z, y), a proper rotation.
pub(crate) fn to_z_up(mesh: &Mesh, up: UpAxis) -> Mesh {
    let mut out = mesh.clone();
    if up == UpAxis::Y {
        for v in &mut out.vertices {
            *v = [v[0], -v[2], v[1]];
        }
    }
    out
}

/// The inverse of [`to_z_up`] for Y-up formats (glTF), with millimetres to metres.
pub(crate) fn to_y_up_metres(mesh: &Mesh) -> Mesh {
    let mut out = mesh.clone();
    for v in &mut out.vertices {
        *v = [v[0] * 1e-3, v[2] * 1e-3, -v[1] * 1e-3];
    }
    out
}

pub(crate) fn size(mesh: &Mesh) -> [f64; 3] {
    mesh.bbox().map_or([0.0; 3], |b| b.size().map(f64::from))
}

/// Uniform scale about the bounding box's centre so the model meets `spec`; returns the factor.
pub(crate) fn scale_to(mesh: &mut Mesh, spec: SizeSpec) -> Result<f64, PrintError> {
    let s = size(mesh);
    let longest = s[0].max(s[1]).max(s[2]);
    let (target, current) = match spec {
        SizeSpec::Keep => return Ok(1.0),
        SizeSpec::LongestSide(t) => (t, longest),
        SizeSpec::Height(t) => (t, s[2]),
        SizeSpec::X(t) => (t, s[0]),
        SizeSpec::Y(t) => (t, s[1]),
        SizeSpec::Fit(b) => {
            let factor = (0..3)
                .filter(|&a| s[a] > 0.0)
                .map(|a| b[a] / s[a])
                .fold(f64::INFINITY, f64::min);
            (factor, 1.0)
        }
    };
    if current <= 0.0 || !(target / current).is_finite() {
        return Err(PrintError::InvalidOption(format!(
            "the model is flat along the axis that {spec:?} measures: choose another size option"
        )));
    }
    let factor = target / current;
    scale_about_centre(mesh, factor);
    Ok(factor)
}

fn scale_about_centre(mesh: &mut Mesh, factor: f64) {
    let b = mesh.bbox().expect("scaled meshes have vertices");
    let centre = [0, 1, 2].map(|a| (b.min[a] as f64 + b.max[a] as f64) / 2.0);
    for v in &mut mesh.vertices {
        for a in 0..3 {
            v[a] = ((v[a] as f64 - centre[a]) * factor + centre[a]) as f32;
        }
    }
}

pub(crate) fn translate(mesh: &mut Mesh, by: [f64; 3]) {
    for v in &mut mesh.vertices {
        for a in 0..3 {
            v[a] = (v[a] as f64 + by[a]) as f32;
        }
    }
}

/// Centre on X/Y and rest the lowest point on Z = 0.
pub(crate) fn place_on_bed(mesh: &mut Mesh) {
    let b = mesh.bbox().expect("placed meshes have vertices");
    translate(
        mesh,
        [
            -(b.min[0] as f64 + b.max[0] as f64) / 2.0,
            -(b.min[1] as f64 + b.max[1] as f64) / 2.0,
            -(b.min[2] as f64),
        ],
    );
}

/// Whether the placed model fits `printer` (as it is or turned 90 degrees on the bed), scaled
/// down to fit when `auto_scale` asks.
pub(crate) fn fit_printer(
    mesh: &mut Mesh,
    printer: &'static Printer,
    auto_scale: bool,
) -> PrinterFit {
    let s = size(mesh);
    let v = printer.build_volume_mm;
    let ratio = |turned: bool| {
        let (x, y) = if turned { (s[1], s[0]) } else { (s[0], s[1]) };
        (v[0] / x).min(v[1] / y).min(v[2] / s[2])
    };
    let (straight, turned) = (ratio(false), ratio(true));
    let best = straight.max(turned);
    let mut fit = PrinterFit {
        printer: printer.id,
        name: printer.name,
        build_volume_mm: v,
        fits: best >= 1.0,
        turn_90_degrees: straight < 1.0 && turned >= 1.0,
        auto_scale: None,
    };
    if !fit.fits && auto_scale {
        scale_about_centre(mesh, best);
        place_on_bed(mesh);
        fit.auto_scale = Some(best);
        fit.fits = true;
        fit.turn_90_degrees = turned > straight;
    }
    fit
}
