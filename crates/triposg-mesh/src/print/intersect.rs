//! Self-intersection test: pairs of faces that pass through each other, which slicers resolve
//! by guessing (PrusaSlicer unions, others drop regions) and booleans refuse.
//!
//! Broad phase: an R*-tree (crate `rstar`) of face bounding boxes joined with itself. Narrow
//! phase: a face crosses another when one of its edges passes strictly through the other's
//! interior, decided with Shewchuk's exact orientation predicates (crate `robust`) so that
//! faces meeting at a shared vertex or edge never count. Coplanar overlaps are not reported.

use robust::{orient3d, Coord3D};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;

use crate::mesh::Mesh;

/// Candidate pairs (boxes that overlap) examined at most, which bounds the time on huge or
/// degenerate meshes (a few seconds); beyond it the count is a lower bound.
const MAX_CANDIDATES: usize = 50_000_000;

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

pub(crate) fn self_intersections(mesh: &Mesh) -> SelfIntersections {
    let boxes: Vec<GeomWithData<Rectangle<[f32; 3]>, u32>> = mesh
        .faces
        .iter()
        .enumerate()
        .map(|(i, &f)| {
            let [a, b, c] = mesh.corners(f);
            let lo = [0, 1, 2].map(|k| a[k].min(b[k]).min(c[k]));
            let hi = [0, 1, 2].map(|k| a[k].max(b[k]).max(c[k]));
            GeomWithData::new(Rectangle::from_corners(lo, hi), i as u32)
        })
        .collect();
    let tree = RTree::bulk_load(boxes);
    let mut result = SelfIntersections {
        pairs: 0,
        complete: true,
    };
    for (examined, (p, q)) in tree
        .intersection_candidates_with_other_tree(&tree)
        .enumerate()
    {
        if examined == MAX_CANDIDATES {
            result.complete = false;
            break;
        }
        if p.data < q.data && faces_cross(mesh, p.data, q.data) {
            result.pairs += 1;
        }
    }
    result
}

fn faces_cross(mesh: &Mesh, f: u32, g: u32) -> bool {
    let (f, g) = (mesh.faces[f as usize], mesh.faces[g as usize]);
    let shared = f.iter().filter(|v| g.contains(v)).count();
    // Faces sharing an edge can only overlap in their plane.
    if shared >= 2 {
        return false;
    }
    let (s, t) = (corners(mesh, f), corners(mesh, g));
    edge_crosses(&s, &t) || edge_crosses(&t, &s)
}

fn corners(mesh: &Mesh, f: [u32; 3]) -> [Coord3D<f64>; 3] {
    mesh.corners(f).map(|p| Coord3D {
        x: p[0] as f64,
        y: p[1] as f64,
        z: p[2] as f64,
    })
}

/// Whether an edge of `s` passes strictly through the interior of `t`.
fn edge_crosses(s: &[Coord3D<f64>; 3], t: &[Coord3D<f64>; 3]) -> bool {
    let side = |p| orient3d(t[0], t[1], t[2], p).signum();
    let sides = s.map(side);
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

    #[test]
    fn closed_surfaces_do_not_cross_themselves() {
        let sphere = crate::print::tests::sphere_mesh();
        assert_eq!(
            self_intersections(&sphere),
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
        let crossing = self_intersections(&shifted([0.5, 0.25, 0.25]));
        assert!(crossing.complete && crossing.pairs > 0, "{crossing:?}");
        // Face to face (touching, sharing the plane x = 1): no crossing.
        assert!(!self_intersections(&shifted([1.0, 0.25, 0.25])).any());
        // A face pushed through its own cube: the fold crosses the faces it passes.
        let mut folded = unit_cube();
        folded.vertices[7] = [-0.5, 0.5, 0.5];
        assert!(self_intersections(&folded).any());
    }
}
