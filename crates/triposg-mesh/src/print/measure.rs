//! Measures of a placed solid that the report needs beyond area and volume.

use rayon::prelude::*;

use super::raycast::RayGrid;
use super::report::Stability;
use crate::mesh::{norm, Mesh};

/// Faces sampled for the wall-thickness estimate.
const THICKNESS_SAMPLES: usize = 4000;
/// A ray's exit face must face within 60 degrees of the ray, or the hit is a neighbour across
/// a concave crease rather than the opposite wall.
const OPPOSITE_WALL_COS: f64 = 0.5;
/// A part that topples when tilted less than this is unstable: a sphere resting on a tiny
/// facet has its centre of mass over the footprint, but any nudge rolls it.
const MIN_TIP_ANGLE_DEG: f64 = 5.0;
/// Vertices this close to Z = 0 (mm) touch the bed.
pub(crate) const BED_TOLERANCE_MM: f64 = 0.01;

/// Local wall thickness at sampled faces: the distance from the face's centre, straight
/// inwards, to the opposite wall. Returns (thickness, face area) pairs.
pub(crate) fn wall_thickness(mesh: &Mesh) -> Vec<(f64, f64)> {
    let grid = RayGrid::new(mesh);
    let stride = mesh.faces.len().div_ceil(THICKNESS_SAMPLES).max(1);
    (0..mesh.faces.len())
        .into_par_iter()
        .step_by(stride)
        .filter_map(|i| {
            let f = mesh.faces[i];
            let n = mesh.face_cross(f);
            let len = norm(n);
            if len == 0.0 {
                return None;
            }
            let inward = n.map(|x| -x / len);
            let corners = mesh.corners(f);
            let centre = [0, 1, 2].map(|a| corners.iter().map(|p| p[a] as f64).sum::<f64>() / 3.0);
            let hit = grid.first_hit(centre, inward, i)?;
            let m = mesh.face_cross(mesh.faces[hit.face]);
            // The exit wall's outward normal points along the ray.
            let along =
                (m[0] * inward[0] + m[1] * inward[1] + m[2] * inward[2]) / norm(m).max(1e-300);
            (along >= OPPOSITE_WALL_COS).then_some((hit.t, len / 2.0))
        })
        .collect()
}

/// Centre of mass (uniform density) and how it sits over the bed contact.
pub(crate) fn stability(mesh: &Mesh) -> Stability {
    let mut volume = 0.0;
    let mut moment = [0.0; 3];
    for &f in &mesh.faces {
        let [a, b, c] = mesh.corners(f).map(|p| p.map(f64::from));
        let bc = crate::mesh::cross(b, c);
        let v = (a[0] * bc[0] + a[1] * bc[1] + a[2] * bc[2]) / 6.0;
        volume += v;
        for k in 0..3 {
            moment[k] += v * (a[k] + b[k] + c[k]) / 4.0;
        }
    }
    let com = moment.map(|m| m / volume);
    let contact: Vec<[f64; 2]> = mesh
        .vertices
        .iter()
        .filter(|v| (v[2] as f64) < BED_TOLERANCE_MM)
        .map(|v| [v[0] as f64, v[1] as f64])
        .collect();
    let hull = convex_hull(contact);
    let area = polygon_area(&hull);
    let margin = if hull.len() >= 3 {
        (0..hull.len())
            .map(|i| {
                let (p, q) = (hull[i], hull[(i + 1) % hull.len()]);
                let e = [q[0] - p[0], q[1] - p[1]];
                // Counter-clockwise hull: inside is on the left.
                (e[0] * (com[1] - p[1]) - e[1] * (com[0] - p[0])) / e[0].hypot(e[1])
            })
            .fold(f64::INFINITY, f64::min)
    } else {
        -hull
            .iter()
            .map(|p| (p[0] - com[0]).hypot(p[1] - com[1]))
            .fold(0.0, f64::max)
    };
    let tip_angle_deg = margin.atan2(com[2]).to_degrees();
    Stability {
        centre_of_mass_mm: com,
        footprint_area_mm2: area,
        margin_mm: margin,
        tip_angle_deg,
        stable: area > 0.0 && tip_angle_deg >= MIN_TIP_ANGLE_DEG,
    }
}

/// Andrew's monotone chain, counter-clockwise, without collinear points.
fn convex_hull(mut points: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    points.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    points.dedup();
    if points.len() < 3 {
        return points;
    }
    let turn = |o: [f64; 2], a: [f64; 2], b: [f64; 2]| {
        (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    };
    let mut hull: Vec<[f64; 2]> = Vec::with_capacity(points.len() * 2);
    for pass in 0..2 {
        let start = hull.len();
        let ordered: Box<dyn Iterator<Item = &[f64; 2]>> = if pass == 0 {
            Box::new(points.iter())
        } else {
            Box::new(points.iter().rev())
        };
        for &p in ordered {
            while hull.len() >= start + 2
                && turn(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

fn polygon_area(polygon: &[[f64; 2]]) -> f64 {
    if polygon.len() < 3 {
        return 0.0;
    }
    (0..polygon.len())
        .map(|i| {
            let (p, q) = (polygon[i], polygon[(i + 1) % polygon.len()]);
            p[0] * q[1] - q[0] * p[1]
        })
        .sum::<f64>()
        / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hull_of_a_square_with_inner_points() {
        let points = vec![
            [0.0, 0.0],
            [2.0, 0.0],
            [2.0, 2.0],
            [0.0, 2.0],
            [1.0, 1.0],
            [1.0, 0.0],
        ];
        let hull = convex_hull(points);
        assert_eq!(hull.len(), 4);
        assert!((polygon_area(&hull) - 4.0).abs() < 1e-12);
    }
}
