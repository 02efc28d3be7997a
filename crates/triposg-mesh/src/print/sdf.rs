//! Signed distance of a triangle mesh on a regular grid, for the voxel remesh and hollowing.
//!
//! Distances are exact (to the nearest triangle) within `band` of the surface and clamped to
//! `band` beyond it. The sign is a winding number counted along grid columns in each of the
//! three axis directions, inside where at least two of the three agree: a hole in the surface
//! or a column grazing an edge only spoils one direction, and overlapping shells (a common
//! defect of user meshes) count as one solid.

use super::PrintError;
use crate::iso_surface::{DenseGrid, GridGeometry};
use crate::mesh::Mesh;

/// About 200 MB of grid at 5 bytes a sample.
const MAX_SAMPLES: u64 = 40_000_000;
/// Grid origin offset in pitches, irrational so that columns miss mesh vertices and edges.
const OFFSET: [f64; 3] = [0.123_456_7, 0.234_567_8, 0.345_678_9];

/// Values positive inside, as everywhere in this crate.
pub(crate) fn signed_distance(mesh: &Mesh, pitch: f64, band: f64) -> Result<DenseGrid, PrintError> {
    let b = mesh.bbox().expect("non-empty");
    let margin = band + 2.0 * pitch;
    let dims = [0, 1, 2]
        .map(|a| ((b.max[a] - b.min[a]) as f64 + 2.0 * margin) / pitch)
        .map(|n| n.ceil() as usize + 2);
    let samples: u64 = dims.iter().map(|&d| d as u64).product();
    if samples > MAX_SAMPLES {
        return Err(PrintError::TooLarge(format!(
            "a voxel grid at {pitch:.3} mm would have {samples} samples (at most {MAX_SAMPLES}): use a larger pitch or wall"
        )));
    }
    let geometry = GridGeometry {
        dims,
        origin: [0, 1, 2].map(|a| (b.min[a] as f64 - margin + OFFSET[a] * pitch) as f32),
        spacing: [pitch as f32; 3],
    };
    let distance = unsigned_distance(mesh, &geometry, band);
    let votes = inside_votes(mesh, &geometry);
    let values = distance
        .into_iter()
        .zip(votes)
        .map(|(d, v)| if v >= 2 { d } else { -d })
        .collect();
    Ok(DenseGrid { geometry, values })
}

fn sample_position(g: &GridGeometry, p: [usize; 3]) -> [f64; 3] {
    [0, 1, 2].map(|a| g.origin[a] as f64 + p[a] as f64 * g.spacing[a] as f64)
}

fn unsigned_distance(mesh: &Mesh, g: &GridGeometry, band: f64) -> Vec<f32> {
    let h = g.spacing[0] as f64;
    let mut distance = vec![band as f32; g.len() as usize];
    for &f in &mesh.faces {
        let t = mesh.corners(f).map(|p| p.map(f64::from));
        let n = crate::mesh::cross(sub(t[1], t[0]), sub(t[2], t[0]));
        let len = dot(n, n).sqrt();
        let range = |a: usize| {
            let lo = t.iter().map(|p| p[a]).fold(f64::INFINITY, f64::min) - band;
            let hi = t.iter().map(|p| p[a]).fold(f64::NEG_INFINITY, f64::max) + band;
            let o = g.origin[a] as f64;
            let first = ((lo - o) / h).ceil().max(0.0) as usize;
            let last = (((hi - o) / h).floor().max(0.0) as usize).min(g.dims[a] - 1);
            first..=last
        };
        for i in range(0) {
            for j in range(1) {
                for k in range(2) {
                    let p = sample_position(g, [i, j, k]);
                    // The plane's distance bounds the triangle's: skip most samples cheaply.
                    if len > 0.0 && (dot(n, sub(p, t[0])) / len).abs() >= band {
                        continue;
                    }
                    let d = point_triangle_distance(p, &t) as f32;
                    let slot = &mut distance[g.index([i, j, k]) as usize];
                    if d < *slot {
                        *slot = d;
                    }
                }
            }
        }
    }
    distance
}

/// For each sample, how many of the three axis directions see it inside (winding number > 0).
fn inside_votes(mesh: &Mesh, g: &GridGeometry) -> Vec<u8> {
    let mut votes = vec![0u8; g.len() as usize];
    for axis in 0..3 {
        let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
        let h = g.spacing[0] as f64;
        // Crossings of the column through samples (iu, iv): (coordinate along axis, +-1).
        let mut columns: Vec<Vec<(f64, i32)>> = vec![Vec::new(); g.dims[u] * g.dims[v]];
        for &f in &mesh.faces {
            let t = mesh.corners(f).map(|p| p.map(f64::from));
            let normal = crate::mesh::cross(sub(t[1], t[0]), sub(t[2], t[0]));
            if normal[axis] == 0.0 {
                continue;
            }
            let index_range = |a: usize| {
                let lo = t.iter().map(|p| p[a]).fold(f64::INFINITY, f64::min);
                let hi = t.iter().map(|p| p[a]).fold(f64::NEG_INFINITY, f64::max);
                let o = g.origin[a] as f64;
                let first = ((lo - o) / h).ceil().max(0.0) as usize;
                let last = (((hi - o) / h).floor().max(-1.0) as i64).min(g.dims[a] as i64 - 1);
                first as i64..=last
            };
            for iu in index_range(u) {
                for iv in index_range(v) {
                    let pu = g.origin[u] as f64 + iu as f64 * h;
                    let pv = g.origin[v] as f64 + iv as f64 * h;
                    let edge = |a: [f64; 3], b: [f64; 3]| {
                        (b[u] - a[u]) * (pv - a[v]) - (b[v] - a[v]) * (pu - a[u])
                    };
                    let (e0, e1, e2) = (edge(t[0], t[1]), edge(t[1], t[2]), edge(t[2], t[0]));
                    let hit =
                        (e0 > 0.0 && e1 > 0.0 && e2 > 0.0) || (e0 < 0.0 && e1 < 0.0 && e2 < 0.0);
                    if !hit {
                        continue;
                    }
                    let at = (e1 * t[0][axis] + e2 * t[1][axis] + e0 * t[2][axis]) / (e0 + e1 + e2);
                    let sign = if normal[axis] > 0.0 { 1 } else { -1 };
                    columns[iu as usize * g.dims[v] + iv as usize].push((at, sign));
                }
            }
        }
        for (c, column) in columns.iter_mut().enumerate() {
            if column.is_empty() {
                continue;
            }
            column.sort_by(|a, b| b.0.total_cmp(&a.0));
            let (iu, iv) = (c / g.dims[v], c % g.dims[v]);
            // Walk the column downwards, adding the crossings above each sample.
            let (mut winding, mut next) = (0, 0);
            for i in (0..g.dims[axis]).rev() {
                let at = g.origin[axis] as f64 + i as f64 * h;
                while next < column.len() && column[next].0 > at {
                    winding += column[next].1;
                    next += 1;
                }
                if winding > 0 {
                    let mut p = [0; 3];
                    p[axis] = i;
                    p[u] = iu;
                    p[v] = iv;
                    votes[g.index(p) as usize] += 1;
                }
            }
        }
    }
    votes
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Closest point on a triangle (Ericson, Real-Time Collision Detection, 5.1.5), as a distance.
pub(crate) fn point_triangle_distance(p: [f64; 3], t: &[[f64; 3]; 3]) -> f64 {
    let [a, b, c] = *t;
    let (ab, ac, ap) = (sub(b, a), sub(c, a), sub(p, a));
    let (d1, d2) = (dot(ab, ap), dot(ac, ap));
    let closest = if d1 <= 0.0 && d2 <= 0.0 {
        a
    } else {
        let bp = sub(p, b);
        let (d3, d4) = (dot(ab, bp), dot(ac, bp));
        let cp = sub(p, c);
        let (d5, d6) = (dot(ab, cp), dot(ac, cp));
        let vc = d1 * d4 - d3 * d2;
        let vb = d5 * d2 - d1 * d6;
        let va = d3 * d6 - d5 * d4;
        let along =
            |o: [f64; 3], d: [f64; 3], s: f64| [o[0] + s * d[0], o[1] + s * d[1], o[2] + s * d[2]];
        if d3 >= 0.0 && d4 <= d3 {
            b
        } else if vc <= 0.0 && d1 >= 0.0 && d3 <= 0.0 {
            along(a, ab, d1 / (d1 - d3))
        } else if d6 >= 0.0 && d5 <= d6 {
            c
        } else if vb <= 0.0 && d2 >= 0.0 && d6 <= 0.0 {
            along(a, ac, d2 / (d2 - d6))
        } else if va <= 0.0 && (d4 - d3) >= 0.0 && (d5 - d6) >= 0.0 {
            along(b, sub(c, b), (d4 - d3) / ((d4 - d3) + (d5 - d6)))
        } else {
            let denom = 1.0 / (va + vb + vc);
            let (v, w) = (vb * denom, vc * denom);
            [
                a[0] + ab[0] * v + ac[0] * w,
                a[1] + ab[1] * v + ac[1] * w,
                a[2] + ab[2] * v + ac[2] * w,
            ]
        }
    };
    let d = sub(p, closest);
    dot(d, d).sqrt()
}
