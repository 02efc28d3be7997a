//! A plinth under a cut model, fused with it into one solid: the plinth's top face is the
//! plinth outline minus the cut's section, sharing the section's edges with the model, so no
//! boolean operation is needed.

use super::cut::{fill_plane, inside, Section, DOWN, UP};
use super::options::{BaseShape, BaseSpec};
use super::PrintError;
use crate::mesh::Mesh;

/// Segments of a round plinth's outline: under 0.1 mm of chord error up to 100 mm across.
const ROUND_SEGMENTS: usize = 128;

pub(crate) fn add_base(
    mesh: &mut Mesh,
    section: &Section,
    spec: &BaseSpec,
) -> Result<(), PrintError> {
    let footprint: Vec<[f64; 2]> = section
        .loops
        .iter()
        .flatten()
        .map(|&v| {
            let p = mesh.vertices[v as usize];
            [p[0] as f64, p[1] as f64]
        })
        .collect();
    if footprint.is_empty() {
        return Err(PrintError::NotSolid(
            "the cut left no section to stand on".into(),
        ));
    }
    let lo = [0, 1].map(|a| footprint.iter().map(|p| p[a]).fold(f64::INFINITY, f64::min));
    let hi = [0, 1].map(|a| {
        footprint
            .iter()
            .map(|p| p[a])
            .fold(f64::NEG_INFINITY, f64::max)
    });
    let centre = [0, 1].map(|a| (lo[a] + hi[a]) / 2.0);
    let margin = BaseSpec::DEFAULT_MARGIN_MM;
    let outline: Vec<[f64; 2]> = match spec.shape {
        BaseShape::Round => {
            let reach = footprint
                .iter()
                .map(|p| (p[0] - centre[0]).hypot(p[1] - centre[1]))
                .fold(0.0, f64::max);
            let diameter = spec.size_mm.map_or(2.0 * (reach + margin), |s| s[0]);
            // The polygon's edges cut inside the circle by r (1 - cos(pi / n)).
            let apothem = diameter / 2.0 * (std::f64::consts::PI / ROUND_SEGMENTS as f64).cos();
            if apothem <= reach {
                return Err(too_small(format!("diameter {diameter:.1} mm"), 2.0 * reach));
            }
            (0..ROUND_SEGMENTS)
                .map(|k| {
                    let a = 2.0 * std::f64::consts::PI * k as f64 / ROUND_SEGMENTS as f64;
                    [
                        centre[0] + diameter / 2.0 * a.cos(),
                        centre[1] + diameter / 2.0 * a.sin(),
                    ]
                })
                .collect()
        }
        BaseShape::Rectangle => {
            let footprint_size = [hi[0] - lo[0], hi[1] - lo[1]];
            let size = spec
                .size_mm
                .unwrap_or(footprint_size.map(|s| s + 2.0 * margin));
            if size[0] <= footprint_size[0] || size[1] <= footprint_size[1] {
                return Err(too_small(
                    format!("{:.1} x {:.1} mm", size[0], size[1]),
                    footprint_size[0].max(footprint_size[1]),
                ));
            }
            let (hx, hy) = (size[0] / 2.0, size[1] / 2.0);
            vec![
                [centre[0] - hx, centre[1] - hy],
                [centre[0] + hx, centre[1] - hy],
                [centre[0] + hx, centre[1] + hy],
                [centre[0] - hx, centre[1] + hy],
            ]
        }
    };
    if footprint.iter().any(|&p| !inside(&outline, p)) {
        return Err(too_small(
            "the requested size".into(),
            (hi[0] - lo[0]).max(hi[1] - lo[1]),
        ));
    }
    let z_top = section.z;
    let z_bottom = section.z - spec.height_mm;
    let first = mesh.vertices.len() as u32;
    let n = outline.len() as u32;
    for z in [z_top, z_bottom] {
        mesh.vertices
            .extend(outline.iter().map(|p| [p[0] as f32, p[1] as f32, z as f32]));
    }
    let top: Vec<u32> = (first..first + n).collect();
    let bottom: Vec<u32> = (first + n..first + 2 * n).collect();
    // The outline runs counter-clockwise seen from above; the top face walks it that way, so
    // the side walls walk it backwards.
    for k in 0..n as usize {
        let next = (k + 1) % n as usize;
        mesh.faces.push([top[next], top[k], bottom[k]]);
        mesh.faces.push([top[next], bottom[k], bottom[next]]);
    }
    let mut rings = vec![top];
    rings.extend(section.loops.iter().cloned());
    fill_plane(mesh, &rings, UP)?;
    fill_plane(mesh, &[bottom], DOWN)
}

fn too_small(asked: String, needed: f64) -> PrintError {
    PrintError::InvalidOption(format!(
        "a base of {asked} does not surround the model's footprint ({needed:.1} mm across): make it larger or leave its size out"
    ))
}
