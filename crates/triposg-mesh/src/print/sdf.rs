//! Signed distance of a triangle mesh on a regular grid, for the voxel remesh and hollowing.
//!
//! Distances are exact (to the nearest triangle) within `band` of the surface and clamped to
//! `band` beyond it. The sign is a winding number counted along grid columns in each of the
//! three axis directions, inside where at least two of the three agree: a hole in the surface
//! or a column grazing an edge only spoils one direction, and overlapping shells (a common
//! defect of user meshes) count as one solid.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use rayon::prelude::*;

use super::{PrintError, Stop};
use crate::iso_surface::{DenseGrid, GridGeometry};
use crate::mesh::Mesh;

/// About 200 MB of grid at 5 bytes a sample.
const MAX_SAMPLES: u64 = 40_000_000;
/// Grid origin offset in pitches, irrational so that columns miss mesh vertices and edges.
const OFFSET: [f64; 3] = [0.123_456_7, 0.234_567_8, 0.345_678_9];

/// Values positive inside, as everywhere in this crate.
pub(crate) fn signed_distance(
    mesh: &Mesh,
    pitch: f64,
    band: f64,
    stop: Stop,
) -> Result<DenseGrid, PrintError> {
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
    let distance = unsigned_distance(mesh, &geometry, band, stop);
    stop.check()?;
    let votes = inside_votes(mesh, &geometry, stop);
    stop.check()?;
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

/// Cut short (its result meaningless) once `stop` is requested.
fn unsigned_distance(mesh: &Mesh, g: &GridGeometry, band: f64, stop: Stop) -> Vec<f32> {
    let h = g.spacing[0] as f64;
    // Faces run in parallel and meet at shared samples. Distances are never negative, and
    // non-negative floats order as their bit patterns, so an atomic integer minimum keeps
    // the nearest (NaN, above every finite pattern, never wins, as with `<`).
    let distance: Vec<AtomicU32> = (0..g.len())
        .map(|_| AtomicU32::new((band as f32).to_bits()))
        .collect();
    mesh.faces.par_iter().for_each(|&f| {
        if stop.requested() {
            return;
        }
        let t = mesh.corners(f).map(|p| p.map(f64::from));
        let n = crate::mesh::cross(sub(t[1], t[0]), sub(t[2], t[0]));
        let len = dot(n, n).sqrt();
        let centre = [0, 1, 2].map(|a| (t[0][a] + t[1][a] + t[2][a]) / 3.0);
        let radius = t
            .iter()
            .map(|&c| dot(sub(c, centre), sub(c, centre)).sqrt())
            .fold(0.0, f64::max);
        // Slack for rounding in the bound below, far above it and far below any distance
        // that matters.
        let slack = 1e-9 * band;
        let range = |a: usize| {
            let lo = t.iter().map(|p| p[a]).fold(f64::INFINITY, f64::min) - band;
            let hi = t.iter().map(|p| p[a]).fold(f64::NEG_INFINITY, f64::max) + band;
            let o = g.origin[a] as f64;
            let first = ((lo - o) / h).ceil().max(0.0) as usize;
            let last = (((hi - o) / h).floor().max(0.0) as usize).min(g.dims[a] - 1);
            first..=last
        };
        // Along z, only samples in the sphere of the largest `beyond` (the band) around the
        // centre and in the band's slab around the plane can pass the tests below: the loop
        // runs over that span, widened by a sample each way for rounding, not the whole box.
        let reach = band + radius + slack;
        let (oz, zs) = (g.origin[2] as f64, range(2));
        for i in range(0) {
            for j in range(1) {
                let q = sample_position(g, [i, j, 0]);
                let (dx, dy) = (q[0] - centre[0], q[1] - centre[1]);
                let r2 = reach * reach - dx * dx - dy * dy;
                if r2 < 0.0 {
                    continue;
                }
                let (mut lo, mut hi) = (centre[2] - r2.sqrt(), centre[2] + r2.sqrt());
                if len > 0.0 && n[2] != 0.0 {
                    // n . (p - t0) = a + n_z z, within the band when |.| < band * len.
                    let a = n[0] * (q[0] - t[0][0]) + n[1] * (q[1] - t[0][1]) - n[2] * t[0][2];
                    let w = band * len;
                    let (z1, z2) = ((-w - a) / n[2], (w - a) / n[2]);
                    lo = lo.max(z1.min(z2));
                    hi = hi.min(z1.max(z2));
                }
                let first = ((((lo - oz) / h).floor() - 1.0).max(*zs.start() as f64)) as usize;
                let last = ((((hi - oz) / h).ceil() + 1.0).max(0.0) as usize).min(*zs.end());
                for k in first..=last {
                    let p = sample_position(g, [i, j, k]);
                    let slot = &distance[g.index([i, j, k]) as usize];
                    // The distances to the bounding sphere and to the plane bound the
                    // triangle's: many samples are already as near another face, or beyond
                    // the band, and are skipped cheaply.
                    let nearest = f64::from(f32::from_bits(slot.load(Ordering::Relaxed)));
                    let beyond = nearest + radius + slack;
                    let to_centre = sub(p, centre);
                    if dot(to_centre, to_centre) > beyond * beyond
                        || (len > 0.0 && (dot(n, sub(p, t[0])) / len).abs() >= band)
                    {
                        continue;
                    }
                    let d = point_triangle_distance(p, &t) as f32;
                    slot.fetch_min(d.to_bits(), Ordering::Relaxed);
                }
            }
        }
    });
    distance
        .into_iter()
        .map(|d| f32::from_bits(d.into_inner()))
        .collect()
}

/// For each sample, how many of the three axis directions see it inside (winding number > 0).
/// Cut short (its result meaningless) once `stop` is requested.
fn inside_votes(mesh: &Mesh, g: &GridGeometry, stop: Stop) -> Vec<u8> {
    let votes: Vec<AtomicU8> = (0..g.len()).map(|_| AtomicU8::new(0)).collect();
    for axis in 0..3 {
        let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
        let h = g.spacing[0] as f64;
        // Crossings of the columns through samples (iu, iv): (column, coordinate along
        // axis, +-1), sorted by column and downwards along it.
        let mut crossings: Vec<(usize, f64, i32)> = mesh
            .faces
            .par_iter()
            .filter_map(|&f| {
                if stop.requested() {
                    return None;
                }
                let t = mesh.corners(f).map(|p| p.map(f64::from));
                let normal = crate::mesh::cross(sub(t[1], t[0]), sub(t[2], t[0]));
                // Faces along the axis meet no column.
                (normal[axis] != 0.0).then_some((t, normal))
            })
            .flat_map_iter(|(t, normal)| {
                let index_range = |a: usize| {
                    let lo = t.iter().map(|p| p[a]).fold(f64::INFINITY, f64::min);
                    let hi = t.iter().map(|p| p[a]).fold(f64::NEG_INFINITY, f64::max);
                    let o = g.origin[a] as f64;
                    let first = ((lo - o) / h).ceil().max(0.0) as usize;
                    let last = (((hi - o) / h).floor().max(-1.0) as i64).min(g.dims[a] as i64 - 1);
                    first as i64..=last
                };
                let range_v = index_range(v);
                index_range(u).flat_map(move |iu| {
                    range_v.clone().filter_map(move |iv| {
                        let pu = g.origin[u] as f64 + iu as f64 * h;
                        let pv = g.origin[v] as f64 + iv as f64 * h;
                        let edge = |a: [f64; 3], b: [f64; 3]| {
                            (b[u] - a[u]) * (pv - a[v]) - (b[v] - a[v]) * (pu - a[u])
                        };
                        let (e0, e1, e2) = (edge(t[0], t[1]), edge(t[1], t[2]), edge(t[2], t[0]));
                        let hit = (e0 > 0.0 && e1 > 0.0 && e2 > 0.0)
                            || (e0 < 0.0 && e1 < 0.0 && e2 < 0.0);
                        if !hit {
                            return None;
                        }
                        let at =
                            (e1 * t[0][axis] + e2 * t[1][axis] + e0 * t[2][axis]) / (e0 + e1 + e2);
                        let sign = if normal[axis] > 0.0 { 1 } else { -1 };
                        Some((iu as usize * g.dims[v] + iv as usize, at, sign))
                    })
                })
            })
            .collect();
        crossings.par_sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        crossings
            .par_chunk_by(|a, b| a.0 == b.0)
            .for_each(|column| {
                let (iu, iv) = (column[0].0 / g.dims[v], column[0].0 % g.dims[v]);
                // Walk the column downwards, adding the crossings above each sample.
                let (mut winding, mut next) = (0, 0);
                for i in (0..g.dims[axis]).rev() {
                    let at = g.origin[axis] as f64 + i as f64 * h;
                    while next < column.len() && column[next].1 > at {
                        winding += column[next].2;
                        next += 1;
                    }
                    if winding > 0 {
                        let mut p = [0; 3];
                        p[axis] = i;
                        p[u] = iu;
                        p[v] = iv;
                        votes[g.index(p) as usize].fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
    }
    votes.into_iter().map(AtomicU8::into_inner).collect()
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
