//! Self-intersection test: pairs of faces that pass through each other, which slicers resolve
//! by guessing (PrusaSlicer unions, others drop regions) and booleans refuse.
//!
//! Broad phase: face bounding boxes that overlap, found through a uniform grid of faces,
//! each face's neighbours in parallel. Narrow
//! phase: a face crosses another when one of its edges passes strictly through the other's
//! interior, decided with Shewchuk's exact orientation predicates (crate `robust`) so that
//! faces meeting at a shared vertex or edge never count. Coplanar overlaps are not reported.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;
use robust::{orient3d, Coord3D};

use super::raycast::{face_box, RayGrid};
use super::{PrintError, Stop};
use crate::mesh::Mesh;

/// Distinct candidate pairs (boxes that overlap) examined at most, which bounds the time on
/// huge or degenerate meshes (a few seconds); beyond it the count is a lower bound.
const MAX_CANDIDATES: usize = 25_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct SelfIntersections {
    /// Face pairs that cross.
    pub pairs: usize,
    /// Every candidate pair was examined (otherwise `pairs` is a lower bound).
    pub complete: bool,
}

impl SelfIntersections {
    pub fn any(&self) -> bool {
        self.pairs > 0
    }
}

pub(crate) fn self_intersections(mesh: &Mesh, stop: Stop) -> Result<SelfIntersections, PrintError> {
    let boxes: Vec<([f32; 3], [f32; 3])> = mesh.faces.iter().map(|&f| face_box(mesh, f)).collect();
    let grid = RayGrid::new(mesh);
    let examined = AtomicUsize::new(0);
    let cut_short = AtomicBool::new(false);
    let pairs = boxes
        .par_iter()
        .enumerate()
        .map(|(p, &(lo, hi))| {
            if stop.requested() {
                return 0;
            }
            if examined.load(Ordering::Relaxed) >= MAX_CANDIDATES {
                cut_short.store(true, Ordering::Relaxed);
                return 0;
            }
            let mut candidates = 0;
            let mut crossing = 0;
            let [xs, ys, zs] = grid.cells_covering(lo, hi);
            for x in xs {
                for y in ys.clone() {
                    for z in zs.clone() {
                        for &q in grid.faces_in([x, y, z]) {
                            let (q_lo, q_hi) = boxes[q as usize];
                            let overlap = (0..3).all(|a| lo[a] <= q_hi[a] && q_lo[a] <= hi[a]);
                            // Each pair once: from its lower face, in the cell of the low
                            // corner of the boxes' overlap (which both boxes cover).
                            if q as usize <= p
                                || !overlap
                                || grid.cell_of([0, 1, 2].map(|a| lo[a].max(q_lo[a]))) != [x, y, z]
                            {
                                continue;
                            }
                            candidates += 1;
                            crossing += usize::from(faces_cross(mesh, p as u32, q));
                        }
                    }
                }
            }
            examined.fetch_add(candidates, Ordering::Relaxed);
            crossing
        })
        .sum();
    stop.check()?;
    Ok(SelfIntersections {
        pairs,
        complete: !cut_short.load(Ordering::Relaxed),
    })
}

fn faces_cross(mesh: &Mesh, f: u32, g: u32) -> bool {
    let (f, g) = (mesh.faces[f as usize], mesh.faces[g as usize]);
    let f_on_g = f.map(|v| g.contains(&v));
    // Faces sharing an edge can only overlap in their plane.
    if f_on_g.iter().filter(|&&s| s).count() >= 2 {
        return false;
    }
    let g_on_f = g.map(|v| f.contains(&v));
    let (s, t) = (corners(mesh, f), corners(mesh, g));
    edge_crosses(&s, f_on_g, &t) || edge_crosses(&t, g_on_f, &s)
}

fn corners(mesh: &Mesh, f: [u32; 3]) -> [Coord3D<f64>; 3] {
    mesh.corners(f).map(|p| Coord3D {
        x: p[0] as f64,
        y: p[1] as f64,
        z: p[2] as f64,
    })
}

/// Whether an edge of `s` passes strictly through the interior of `t`; `shared` marks the
/// corners of `s` that are corners of `t`.
fn edge_crosses(s: &[Coord3D<f64>; 3], shared: [bool; 3], t: &[Coord3D<f64>; 3]) -> bool {
    // A shared corner lies in `t`'s plane: exactly zero, which the predicate reaches only
    // through its slowest exact stage, and neighbouring faces are most of the candidates.
    let side = |k: usize| {
        if shared[k] {
            0.0
        } else {
            orient3d(t[0], t[1], t[2], s[k]).signum()
        }
    };
    let sides = [0, 1, 2].map(side);
    (0..3).any(|k| {
        let (p, q) = (s[k], s[(k + 1) % 3]);
        if sides[k] * sides[(k + 1) % 3] >= 0.0 {
            return false;
        }
        let turn = |a, b| orient3d(p, q, a, b);
        let w = [turn(t[0], t[1]), turn(t[1], t[2]), turn(t[2], t[0])];
        w.iter().all(|&x| x > 0.0) || w.iter().all(|&x| x < 0.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::tests::unit_cube;
    use crate::print::NEVER;

    #[test]
    fn closed_surfaces_do_not_cross_themselves() {
        let sphere = crate::print::tests::sphere_mesh();
        assert_eq!(
            self_intersections(&sphere, NEVER).unwrap(),
            SelfIntersections {
                pairs: 0,
                complete: true
            }
        );
    }

    #[test]
    fn overlapping_cubes_cross_and_touching_ones_do_not() {
        let shifted = |by: [f32; 3]| {
            let mut a = unit_cube();
            let b = unit_cube();
            let n = a.vertices.len() as u32;
            a.vertices
                .extend(b.vertices.iter().map(|v| [0, 1, 2].map(|k| v[k] + by[k])));
            a.faces.extend(b.faces.iter().map(|f| f.map(|v| v + n)));
            a
        };
        // Half-way inside along x, offset in y and z so that no edges meet exactly: every
        // face of one that reaches into the other crosses one face of the other.
        let crossing = self_intersections(&shifted([0.5, 0.25, 0.25]), NEVER).unwrap();
        assert!(crossing.complete && crossing.pairs > 0, "{crossing:?}");
        // Face to face (touching, sharing the plane x = 1): no crossing.
        assert!(!self_intersections(&shifted([1.0, 0.25, 0.25]), NEVER)
            .unwrap()
            .any());
        // A face pushed through its own cube: the fold crosses the faces it passes.
        let mut folded = unit_cube();
        folded.vertices[7] = [-0.5, 0.5, 0.5];
        assert!(self_intersections(&folded, NEVER).unwrap().any());
    }
}
