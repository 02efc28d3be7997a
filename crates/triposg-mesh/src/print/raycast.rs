//! A uniform grid of triangle buckets for the two spatial queries of print preparation: the
//! few thousand rays of the wall-thickness estimate and the overlapping face boxes of the
//! self-intersection test. Faces of generated meshes are all about one size, which is what a
//! uniform grid is best at: a box query costs a handful of bucket reads, several times less
//! than an R*-tree's descent.

use std::ops::RangeInclusive;

use rayon::prelude::*;

use crate::mesh::Mesh;

pub(crate) struct RayGrid<'a> {
    mesh: &'a Mesh,
    origin: [f64; 3],
    cell: f64,
    dims: [usize; 3],
    /// Triangles per cell, as ranges of `items` (compressed rows).
    starts: Vec<u32>,
    items: Vec<u32>,
}

/// The bounding box (low, high corners) of face `f`.
pub(crate) fn face_box(mesh: &Mesh, f: [u32; 3]) -> ([f32; 3], [f32; 3]) {
    let [a, b, c] = mesh.corners(f);
    (
        [0, 1, 2].map(|k| a[k].min(b[k]).min(c[k])),
        [0, 1, 2].map(|k| a[k].max(b[k]).max(c[k])),
    )
}

/// A hit: distance along the ray and the face hit.
pub(crate) struct Hit {
    pub t: f64,
    pub face: usize,
}

impl<'a> RayGrid<'a> {
    pub(crate) fn new(mesh: &'a Mesh) -> Self {
        let b = mesh.bbox().expect("non-empty");
        let size = b.size().map(|s| s as f64);
        let volume = size.iter().map(|s| s.max(1e-9)).product::<f64>();
        // About two triangles per cell, at most 128 cells an axis.
        let cell = (volume / (mesh.faces.len() as f64 / 2.0).max(1.0))
            .cbrt()
            .max(size.iter().fold(0f64, |m, &s| m.max(s)) / 128.0);
        let cell = if cell > 0.0 { cell } else { 1.0 };
        let dims = size.map(|s| ((s / cell).floor() as usize + 1).min(129));
        let origin = b.min.map(f64::from);
        let mut grid = Self {
            mesh,
            origin,
            cell,
            dims,
            starts: Vec::new(),
            items: Vec::new(),
        };
        // Compressed rows, as `crate::rows` builds them (a fine grid has millions of cells),
        // from (cell, face) pairs found and sorted on every core: its two serial passes took
        // 0.15 s for 500k faces, and print preparation builds two grids.
        let mut pairs: Vec<(u32, u32)> = {
            let grid = &grid;
            mesh.faces
                .par_iter()
                .enumerate()
                .flat_map_iter(|(i, &f)| {
                    let (lo, hi) = face_box(mesh, f);
                    let [x, y, z] = grid.cells_covering(lo, hi);
                    x.flat_map(move |x| {
                        let z = z.clone();
                        y.clone()
                            .flat_map(move |y| z.clone().map(move |z| [x, y, z]))
                    })
                    // At most 129^3 cells: the index fits.
                    .map(move |c| (grid.linear(c) as u32, i as u32))
                })
                .collect()
        };
        // By cell, then by face: each cell's faces in face order.
        pairs.par_sort_unstable();
        let mut starts = vec![0u32; dims.iter().product::<usize>() + 1];
        for &(cell, _) in &pairs {
            starts[cell as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        grid.starts = starts;
        grid.items = pairs.into_iter().map(|(_, face)| face).collect();
        grid
    }

    /// The cells that the box `lo`..`hi` covers, per axis.
    pub(crate) fn cells_covering(&self, lo: [f32; 3], hi: [f32; 3]) -> [RangeInclusive<usize>; 3] {
        [0, 1, 2].map(|a| self.index_of(a, lo[a] as f64)..=self.index_of(a, hi[a] as f64))
    }

    /// The cell holding point `p`.
    pub(crate) fn cell_of(&self, p: [f32; 3]) -> [usize; 3] {
        [0, 1, 2].map(|a| self.index_of(a, p[a] as f64))
    }

    /// The faces whose boxes cover `cell`.
    pub(crate) fn faces_in(&self, cell: [usize; 3]) -> &[u32] {
        let c = self.linear(cell);
        &self.items[self.starts[c] as usize..self.starts[c + 1] as usize]
    }

    fn index_of(&self, axis: usize, x: f64) -> usize {
        (((x - self.origin[axis]) / self.cell).floor().max(0.0) as usize).min(self.dims[axis] - 1)
    }

    fn linear(&self, p: [usize; 3]) -> usize {
        (p[0] * self.dims[1] + p[1]) * self.dims[2] + p[2]
    }

    /// The nearest face (other than `skip`) that the ray from `origin` along unit `dir` meets.
    pub(crate) fn first_hit(&self, origin: [f64; 3], dir: [f64; 3], skip: usize) -> Option<Hit> {
        // Amanatides & Woo grid walk, starting inside the grid (origins are on the surface).
        let mut cell = [0, 1, 2].map(|a| self.index_of(a, origin[a]) as i64);
        let step = dir.map(|d| if d > 0.0 { 1i64 } else { -1 });
        let mut t_max = [0f64; 3];
        let mut t_delta = [0f64; 3];
        for a in 0..3 {
            if dir[a] == 0.0 {
                t_max[a] = f64::INFINITY;
                t_delta[a] = f64::INFINITY;
            } else {
                let boundary =
                    self.origin[a] + (cell[a] + i64::from(dir[a] > 0.0)) as f64 * self.cell;
                t_max[a] = (boundary - origin[a]) / dir[a];
                t_delta[a] = self.cell / dir[a].abs();
            }
        }
        let mut best: Option<Hit> = None;
        loop {
            let c = self.linear(cell.map(|x| x as usize));
            for &f in &self.items[self.starts[c] as usize..self.starts[c + 1] as usize] {
                let f = f as usize;
                if f == skip {
                    continue;
                }
                if let Some(t) = self.intersect(origin, dir, f) {
                    if best.as_ref().is_none_or(|b| t < b.t) {
                        best = Some(Hit { t, face: f });
                    }
                }
            }
            let a = (0..3)
                .min_by(|&i, &j| t_max[i].total_cmp(&t_max[j]))
                .expect("three axes");
            if best.as_ref().is_some_and(|b| b.t <= t_max[a]) {
                return best;
            }
            cell[a] += step[a];
            if cell[a] < 0 || cell[a] >= self.dims[a] as i64 {
                return best;
            }
            t_max[a] += t_delta[a];
        }
    }

    /// Moeller-Trumbore; hits at t > 0 only.
    fn intersect(&self, o: [f64; 3], d: [f64; 3], face: usize) -> Option<f64> {
        let [a, b, c] = self
            .mesh
            .corners(self.mesh.faces[face])
            .map(|p| p.map(f64::from));
        let e1 = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
        let e2 = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
        let p = crate::mesh::cross(d, e2);
        let det = e1[0] * p[0] + e1[1] * p[1] + e1[2] * p[2];
        if det.abs() < 1e-18 {
            return None;
        }
        let s = [o[0] - a[0], o[1] - a[1], o[2] - a[2]];
        let u = (s[0] * p[0] + s[1] * p[1] + s[2] * p[2]) / det;
        if !(0.0..=1.0).contains(&u) {
            return None;
        }
        let q = crate::mesh::cross(s, e1);
        let v = (d[0] * q[0] + d[1] * q[1] + d[2] * q[2]) / det;
        if v < 0.0 || u + v > 1.0 {
            return None;
        }
        let t = (e2[0] * q[0] + e2[1] * q[1] + e2[2] * q[2]) / det;
        (t > 0.0).then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each cell lists exactly the faces whose boxes cover it, in face order.
    #[test]
    fn cells_hold_the_faces_covering_them_in_order() {
        let mesh = crate::print::tests::sphere_mesh();
        let grid = RayGrid::new(&mesh);
        let mut expected = 0;
        for (i, &f) in mesh.faces.iter().enumerate() {
            let (lo, hi) = face_box(&mesh, f);
            let [xs, ys, zs] = grid.cells_covering(lo, hi);
            for x in xs {
                for y in ys.clone() {
                    for z in zs.clone() {
                        assert!(grid.faces_in([x, y, z]).contains(&(i as u32)));
                        expected += 1;
                    }
                }
            }
        }
        assert_eq!(grid.items.len(), expected);
        assert!(grid.starts.windows(2).all(|w| {
            grid.items[w[0] as usize..w[1] as usize]
                .windows(2)
                .all(|p| p[0] < p[1])
        }));
    }
}
