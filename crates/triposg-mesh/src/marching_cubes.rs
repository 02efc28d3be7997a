//! Marching cubes case table, generated instead of typed in so that its consistency follows from
//! one rule rather than from 256 hand-checked rows.
//!
//! Algorithm: Lorensen & Cline, "Marching Cubes" (SIGGRAPH 1987), with face ambiguities resolved
//! by a fixed rule in the manner of Montani, Scateni & Scopigno, "A modified look-up table for
//! implicit disambiguation of Marching Cubes" (The Visual Computer, 1994): on a face whose
//! diagonal corners alternate in sign, the inside corners are always kept apart.
//!
//! Why the output is a closed 2-manifold when the sampled field is closed (every boundary sample
//! outside): the iso-contour on a cube face depends only on that face's four signs, so the two
//! cells sharing a face trace the same segments, in opposite directions. Each segment therefore
//! borders exactly two polygons with opposite orientation (watertight, consistently oriented
//! edges). Each crossing grid edge lies in exactly one polygon of each of its four cells, so its
//! vertex's faces form one fan (manifold vertices). Polygons are split into triangles without
//! ever adding a diagonal between two points of one cube face, the only place where a diagonal
//! of one cell could meet a diagonal of its neighbour.

use std::sync::OnceLock;

/// Corner `c` of a cell sits at offset `(c & 1, c >> 1 & 1, c >> 2 & 1)`.
pub(crate) const fn corner_offset(c: usize) -> [usize; 3] {
    [c & 1, (c >> 1) & 1, (c >> 2) & 1]
}

/// The corner where edge `e` starts; edges `4a..4a+4` run along axis `a`.
pub(crate) const fn edge_origin(e: usize) -> usize {
    let axis = e / 4;
    let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
    ((e & 1) << u) | (((e >> 1) & 1) << v)
}

fn edge_between(a: usize, b: usize) -> usize {
    let axis = (a ^ b).trailing_zeros() as usize;
    let low = a.min(b);
    let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
    axis * 4 + ((low >> u) & 1) + 2 * ((low >> v) & 1)
}

/// The six faces, corners listed counter-clockwise seen from outside the cell.
fn faces() -> [[usize; 4]; 6] {
    let mut out = [[0; 4]; 6];
    for axis in 0..3 {
        let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
        for side in 0..2 {
            let at = |a: usize, b: usize| (side << axis) | (a << u) | (b << v);
            // (u, v) is right-handed around +axis, so this order faces outward on the + side.
            let ring = [at(0, 0), at(1, 0), at(1, 1), at(0, 1)];
            out[axis * 2 + side] = if side == 1 {
                ring
            } else {
                [ring[0], ring[3], ring[2], ring[1]]
            };
        }
    }
    out
}

/// What to emit for one cell configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct Case {
    /// Triangles over edge ids, wound outward (towards the negative side).
    pub triangles: Vec<[u8; 3]>,
    /// Polygons (edge ids, outward winding) with no admissible fan: the extractor adds a
    /// vertex at their centroid and fans around it.
    pub centred_polygons: Vec<Vec<u8>>,
}

/// Case for each 8-bit sign pattern, bit `c` set when corner `c` is inside (value > 0).
pub(crate) fn cases() -> &'static [Case; 256] {
    static CASES: OnceLock<[Case; 256]> = OnceLock::new();
    CASES.get_or_init(|| std::array::from_fn(|config| build_case(config as u8)))
}

fn build_case(config: u8) -> Case {
    let inside = |c: usize| config >> c & 1 == 1;
    // Segment start edge -> end edge. On each face, every run of consecutive inside corners is
    // cut off by one segment, walked with the inside on its left (seen from outside the cell).
    let mut next = [None; 12];
    for ring in faces() {
        for k in 0..4 {
            if inside(ring[k]) && !inside(ring[(k + 1) % 4]) {
                let mut j = k;
                while inside(ring[(j + 3) % 4]) {
                    j = (j + 3) % 4;
                }
                let start = edge_between(ring[k], ring[(k + 1) % 4]);
                next[start] = Some(edge_between(ring[(j + 3) % 4], ring[j]));
            }
        }
    }
    let mut case = Case::default();
    let mut used = [false; 12];
    for first in 0..12 {
        if next[first].is_none() || used[first] {
            continue;
        }
        let mut polygon = Vec::new();
        let mut e = first;
        while !used[e] {
            used[e] = true;
            polygon.push(e as u8);
            e = next[e].expect("every crossing edge starts one segment and ends another");
        }
        // The loop runs counter-clockwise around the inside patch seen from outside the cell,
        // so its right-hand normal points into the solid: reverse it.
        polygon.reverse();
        add_polygon(&mut case, polygon);
    }
    case
}

fn share_face(a: u8, b: u8) -> bool {
    let (oa, ob) = (edge_origin(a as usize), edge_origin(b as usize));
    let (aa, ab) = (a as usize / 4, b as usize / 4);
    if aa == ab {
        // Parallel edges share a face when they differ in one offset bit only.
        (oa ^ ob).count_ones() == 1
    } else {
        // Perpendicular edges share a face when they touch.
        let ends = |o: usize, axis: usize| [o, o | 1 << axis];
        ends(oa, aa).iter().any(|c| ends(ob, ab).contains(c))
    }
}

fn add_polygon(case: &mut Case, polygon: Vec<u8>) {
    let n = polygon.len();
    let fan_ok =
        |root: usize| (2..n - 1).all(|k| !share_face(polygon[root], polygon[(root + k) % n]));
    match (0..n).find(|&root| fan_ok(root)) {
        Some(root) => case.triangles.extend((1..n - 1).map(|k| {
            [
                polygon[root],
                polygon[(root + k) % n],
                polygon[(root + k + 1) % n],
            ]
        })),
        None => case.centred_polygons.push(polygon),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_corner_is_one_triangle_facing_the_corner_away() {
        let case = &cases()[1];
        assert_eq!(case.triangles.len(), 1);
        assert!(case.centred_polygons.is_empty());
        // Edges from corner 0 along x, y, z are 0, 4, 8; the triangle's normal must point away
        // from corner 0, i.e. towards (+1, +1, +1).
        let point = |e: u8| {
            let mut p = corner_offset(edge_origin(e as usize)).map(|x| x as f64);
            p[e as usize / 4] += 0.5;
            p
        };
        let [a, b, c] = case.triangles[0].map(point);
        let n = crate::mesh::cross(
            [b[0] - a[0], b[1] - a[1], b[2] - a[2]],
            [c[0] - a[0], c[1] - a[1], c[2] - a[2]],
        );
        assert!(n.iter().all(|&x| x < 0.0) || n.iter().all(|&x| x > 0.0));
        assert!(n[0] > 0.0, "normal {n:?} points into the inside corner");
    }

    #[test]
    fn table_covers_each_crossing_edge_once_and_is_empty_when_uniform() {
        for config in 0..=255u8 {
            let case = &cases()[config as usize];
            let mut count = [0usize; 12];
            for t in &case.triangles {
                for &e in t {
                    count[e as usize] += 1;
                }
            }
            for p in &case.centred_polygons {
                for &e in p {
                    count[e as usize] += 1;
                }
            }
            for (e, &n) in count.iter().enumerate() {
                let o = edge_origin(e);
                let crosses = (config >> o & 1) != (config >> (o | 1 << (e / 4)) & 1);
                assert_eq!(crosses, n > 0, "config {config:#010b} edge {e}");
            }
        }
        assert!(cases()[0].triangles.is_empty() && cases()[255].triangles.is_empty());
    }
}
