//! Hollowing for resin printers: an inner shell at `wall` mm inside the outer surface, facing
//! into the cavity, from the signed distance field. Without drain holes the outer surface is
//! kept exactly; drain holes are cut in the distance field, so then the whole shell is
//! rebuilt at the field's pitch.

use super::options::{DrainHoles, HollowSpec};
use super::placement::size;
use super::report::HollowReport;
use super::sdf::signed_distance;
use super::{PrintError, Stop};
use crate::iso_surface::{extract_dense, DenseGrid};
use crate::mesh::Mesh;
use crate::DEFAULT_MIN_COMPONENT_FRACTION;

/// Field samples across the wall, and at most across the model.
const SAMPLES_PER_WALL: f64 = 4.0;
const MAX_CELLS: f64 = 256.0;

pub(crate) fn hollow(
    mesh: &mut Mesh,
    spec: &HollowSpec,
    warnings: &mut Vec<String>,
    stop: Stop,
) -> Result<HollowReport, PrintError> {
    let wall = spec.wall_mm;
    let longest = size(mesh).iter().fold(0f64, |m, &s| m.max(s));
    let pitch = (wall / SAMPLES_PER_WALL).max(longest / MAX_CELLS);
    let mut field = signed_distance(mesh, pitch, wall + 3.0 * pitch, stop)?;
    let outer_volume = mesh.volume();
    let mut report = HollowReport {
        wall_mm: wall,
        pitch_mm: pitch,
        cavity_volume_cm3: 0.0,
        drain_holes: Vec::new(),
        drain_diameter_mm: spec.drain_holes.map(|d| d.diameter_mm),
    };
    let core = DenseGrid {
        geometry: field.geometry,
        values: field.values.iter().map(|&d| d - wall as f32).collect(),
    };
    let mut inner = extract_dense(&core);
    inner.cleanup(DEFAULT_MIN_COMPONENT_FRACTION);
    if inner.faces.is_empty() {
        warnings.push(format!(
            "nothing hollowed: the model is nowhere thicker than twice the {wall} mm wall"
        ));
        return Ok(report);
    }
    match spec.drain_holes {
        None => {
            for f in &mut inner.faces {
                f.swap(1, 2);
            }
            let base = mesh.vertices.len() as u32;
            mesh.vertices.extend(&inner.vertices);
            mesh.faces
                .extend(inner.faces.iter().map(|f| f.map(|v| v + base)));
        }
        Some(holes) => {
            report.drain_holes = drill(&mut field, &core, wall, holes);
            if report.drain_holes.len() < holes.count as usize {
                warnings.push(format!(
                    "room for {} of {} drain holes only",
                    report.drain_holes.len(),
                    holes.count
                ));
            }
            let mut shell = extract_dense(&field);
            shell.cleanup(DEFAULT_MIN_COMPONENT_FRACTION);
            *mesh = shell;
        }
    }
    report.cavity_volume_cm3 = (outer_volume - mesh.volume()) / 1000.0;
    Ok(report)
}

/// Turns `field` (signed distance to the outer surface) into the shell's field minus
/// vertical holes from below into the cavity's lowest points; returns the holes' centres.
fn drill(field: &mut DenseGrid, core: &DenseGrid, wall: f64, holes: DrainHoles) -> Vec<[f64; 2]> {
    let g = field.geometry;
    let h = g.spacing[0] as f64;
    let position = |i: usize, a: usize| g.origin[a] as f64 + i as f64 * h;
    // Lowest cavity sample of each column.
    let mut floors: Vec<(f64, [f64; 2])> = Vec::new();
    for i in 0..g.dims[0] {
        for j in 0..g.dims[1] {
            if let Some(k) =
                (0..g.dims[2]).find(|&k| core.values[g.index([i, j, k]) as usize] > 0.0)
            {
                floors.push((position(k, 2), [position(i, 0), position(j, 1)]));
            }
        }
    }
    floors.sort_by(|a, b| a.0.total_cmp(&b.0));
    let radius = holes.diameter_mm / 2.0;
    let spacing = 2.0 * holes.diameter_mm + wall;
    let mut chosen: Vec<(f64, [f64; 2])> = Vec::new();
    for &(floor, xy) in &floors {
        if chosen.len() == holes.count as usize {
            break;
        }
        if chosen
            .iter()
            .all(|c| (c.1[0] - xy[0]).hypot(c.1[1] - xy[1]) >= spacing)
        {
            chosen.push((floor, xy));
        }
    }
    for idx in 0..field.values.len() {
        let p = g.point(idx as u64);
        let q = [position(p[0], 0), position(p[1], 1), position(p[2], 2)];
        let d = field.values[idx] as f64;
        let mut value = d.min(wall - d);
        for (floor, xy) in &chosen {
            // Positive inside the hole: a cylinder from below up into the cavity.
            let hole = (radius - (q[0] - xy[0]).hypot(q[1] - xy[1])).min(floor + h - q[2]);
            value = value.min(-hole);
        }
        field.values[idx] = value as f32;
    }
    chosen.into_iter().map(|c| c.1).collect()
}
