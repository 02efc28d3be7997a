//! Removal of what generation leaves behind: floaters (small disconnected parts), degenerate
//! and duplicate faces, and vertices no face uses.

use crate::mesh::Mesh;
use crate::rows::{compressed_rows, sort_rows};

/// Hunyuan3D drops components with fewer than 0.5% of the faces.
pub const DEFAULT_MIN_COMPONENT_FRACTION: f64 = 0.005;

/// What [`Mesh::cleanup`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub degenerate_faces: usize,
    pub duplicate_faces: usize,
    pub small_components: usize,
    pub small_component_faces: usize,
    pub unreferenced_vertices: usize,
}

impl Mesh {
    /// Everything below in a safe order: degenerate and duplicate faces first so they do not
    /// count towards component sizes, unreferenced vertices last.
    pub fn cleanup(&mut self, min_component_fraction: f64) -> CleanupReport {
        let degenerate_faces = self.remove_degenerate_faces();
        let duplicate_faces = self.remove_duplicate_faces();
        let (small_components, small_component_faces) =
            self.remove_small_components(min_component_fraction);
        CleanupReport {
            degenerate_faces,
            duplicate_faces,
            small_components,
            small_component_faces,
            unreferenced_vertices: self.remove_unreferenced_vertices(),
        }
    }

    /// Drops faces that use a vertex twice. Zero-area faces with three distinct vertices stay:
    /// removing them would open a closed surface; weld first to turn them into index-degenerate
    /// ones.
    pub fn remove_degenerate_faces(&mut self) -> usize {
        let before = self.faces.len();
        self.faces
            .retain(|f| f[0] != f[1] && f[1] != f[2] && f[0] != f[2]);
        before - self.faces.len()
    }

    /// Keeps the first of faces over the same three vertices, whatever their order or winding.
    pub fn remove_duplicate_faces(&mut self) -> usize {
        let before = self.faces.len();
        let sorted = |mut f: [u32; 3]| {
            f.sort_unstable();
            f
        };
        // Faces over the same vertices share their lowest one: grouped by it in two linear
        // passes, each vertex's faces sorted by (vertices, index) put every duplicate right
        // after the first of its kind. A hash set of every face missed the cache on nearly
        // every insert and was most of the cleanup's time.
        let (starts, mut keyed) = compressed_rows(self.index_bound(), || {
            self.faces.iter().enumerate().map(|(i, f)| {
                let key = sorted(*f);
                (key[0] as usize, (key, i as u32))
            })
        });
        sort_rows(&starts, &mut keyed);
        let mut keep = vec![true; self.faces.len()];
        for pair in keyed.windows(2) {
            // Equal keys share their lowest vertex, hence their row.
            if pair[0].0 == pair[1].0 {
                keep[pair[1].1 as usize] = false;
            }
        }
        let mut keep = keep.into_iter();
        self.faces
            .retain(|_| keep.next().expect("one flag per face"));
        before - self.faces.len()
    }

    /// Component of every face, faces being connected when they share a vertex; labels are
    /// dense, in order of first appearance.
    pub fn face_components(&self) -> Vec<u32> {
        let mut parent: Vec<u32> = (0..self.vertices.len() as u32).collect();
        fn root(parent: &mut [u32], mut v: u32) -> u32 {
            while parent[v as usize] != v {
                parent[v as usize] = parent[parent[v as usize] as usize];
                v = parent[v as usize];
            }
            v
        }
        for f in &self.faces {
            for &v in &f[1..] {
                let (a, b) = (root(&mut parent, f[0]), root(&mut parent, v));
                parent[a.max(b) as usize] = a.min(b);
            }
        }
        let mut label = vec![u32::MAX; self.vertices.len()];
        let mut next = 0;
        self.faces
            .iter()
            .map(|f| {
                let r = root(&mut parent, f[0]) as usize;
                if label[r] == u32::MAX {
                    label[r] = next;
                    next += 1;
                }
                label[r]
            })
            .collect()
    }

    /// Drops components with fewer than `min_fraction` of all faces; returns how many
    /// components and faces went.
    pub fn remove_small_components(&mut self, min_fraction: f64) -> (usize, usize) {
        let components = self.face_components();
        let count = components.iter().max().map_or(0, |&m| m as usize + 1);
        let mut sizes = vec![0usize; count];
        for &c in &components {
            sizes[c as usize] += 1;
        }
        let threshold = min_fraction * self.faces.len() as f64;
        let small = |c: u32| (sizes[c as usize] as f64) < threshold;
        let removed_components = sizes.iter().filter(|&&s| (s as f64) < threshold).count();
        let before = self.faces.len();
        let mut labels = components.into_iter();
        self.faces
            .retain(|_| !small(labels.next().expect("one label per face")));
        (removed_components, before - self.faces.len())
    }

    /// Drops vertices no face uses, keeping the order of the others.
    pub fn remove_unreferenced_vertices(&mut self) -> usize {
        let mut used = vec![false; self.vertices.len()];
        for &v in self.faces.iter().flatten() {
            used[v as usize] = true;
        }
        let mut remap = vec![u32::MAX; self.vertices.len()];
        let mut kept = Vec::with_capacity(self.vertices.len());
        for (i, &p) in self.vertices.iter().enumerate() {
            if used[i] {
                remap[i] = kept.len() as u32;
                kept.push(p);
            }
        }
        let removed = self.vertices.len() - kept.len();
        self.vertices = kept;
        for f in &mut self.faces {
            *f = f.map(|v| remap[v as usize]);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iso_surface::{extract_dense, tests::dense_from};

    #[test]
    fn removes_floaters_but_keeps_the_body() {
        // A big sphere plus a tiny one: the tiny one is well under 0.5% of the faces.
        let field = |p: [f32; 3]| {
            let big = 0.6 - (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
            let d = [p[0] - 0.85, p[1] - 0.85, p[2] - 0.85];
            let small = 0.04 - (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
            big.max(small)
        };
        let mut mesh = extract_dense(&dense_from(64, field));
        let components = mesh.face_components();
        assert_eq!(components.iter().max(), Some(&1));
        let floater_faces = components.iter().filter(|&&c| c == 1).count();
        assert!((floater_faces as f64) < 0.005 * components.len() as f64);
        let faces = mesh.faces.len();
        let report = mesh.cleanup(DEFAULT_MIN_COMPONENT_FRACTION);
        assert_eq!(report.small_components, 1);
        assert!(report.small_component_faces > 0);
        assert_eq!(mesh.faces.len(), faces - report.small_component_faces);
        assert!(report.unreferenced_vertices > 0);
        assert!(mesh.topology().is_closed_manifold());
        assert!(mesh.face_components().iter().all(|&c| c == 0));
        let bbox = mesh.bbox().unwrap();
        assert!(bbox.max.iter().all(|&x| x < 0.61));
    }

    #[test]
    fn duplicates_around_a_busy_vertex_keep_the_first() {
        // A fan of 3000 faces around vertex 0 (as a cap's centre), every tenth repeated later
        // rotated or flipped.
        let n = 3000u32;
        let vertices = vec![[0.0f32; 3]; n as usize + 2];
        let mut faces: Vec<[u32; 3]> = (1..=n).map(|i| [0, i, i + 1]).collect();
        let originals = faces.clone();
        for i in (0..n as usize).step_by(10) {
            let [a, b, c] = originals[i];
            faces.push(if i % 20 == 0 { [b, c, a] } else { [a, c, b] });
        }
        let mut mesh = Mesh::new(vertices, faces);
        assert_eq!(mesh.remove_duplicate_faces(), 300);
        assert_eq!(mesh.faces, originals);
    }

    #[test]
    fn removes_degenerate_duplicate_and_unreferenced() {
        let mut mesh = crate::mesh::tests::unit_cube();
        let reference = mesh.clone();
        mesh.vertices.push([9.0, 9.0, 9.0]);
        assert_eq!(mesh.faces[0], [0, 2, 3]);
        mesh.faces.push([0, 0, 1]);
        mesh.faces.push([3, 0, 2]); // the same face rotated
        mesh.faces.push([0, 3, 2]); // and flipped
        let report = mesh.cleanup(DEFAULT_MIN_COMPONENT_FRACTION);
        assert_eq!(report.degenerate_faces, 1);
        assert_eq!(report.duplicate_faces, 2);
        assert_eq!(report.unreferenced_vertices, 1);
        assert_eq!(report.small_components, 0);
        assert_eq!(mesh.vertices, reference.vertices);
        assert_eq!(mesh.faces, reference.faces);
    }
}
