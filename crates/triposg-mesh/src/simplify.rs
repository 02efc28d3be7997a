//! Quadric edge-collapse decimation through meshoptimizer (Garland & Heckbert style error
//! metric), with the border locked so a closed surface stays closed and an open one keeps its
//! outline.

use meshopt::SimplifyOptions;

use crate::mesh::Mesh;

/// What [`Mesh::simplify`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimplifyReport {
    pub faces_before: usize,
    pub faces_after: usize,
    /// Largest deviation introduced, relative to the mesh's extent (meshoptimizer's measure).
    pub relative_error: f32,
}

impl Mesh {
    /// Collapses edges until at most `target_faces` remain or the next collapse would move
    /// the surface by more than `max_relative_error` of the mesh's extent (1.0: no limit).
    /// Vertices that no longer have faces are dropped.
    pub fn simplify(&mut self, target_faces: usize, max_relative_error: f32) -> SimplifyReport {
        let faces_before = self.faces.len();
        let indices: Vec<u32> = self.faces.concat();
        let mut relative_error = 0.0;
        let simplified = meshopt::simplify_decoder(
            &indices,
            &self.vertices,
            target_faces * 3,
            max_relative_error,
            SimplifyOptions::LockBorder,
            Some(&mut relative_error),
        );
        self.faces = simplified
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        self.remove_unreferenced_vertices();
        SimplifyReport {
            faces_before,
            faces_after: self.faces.len(),
            relative_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::iso_surface::{extract_dense, tests::dense_from, tests::sphere, tests::torus};

    #[test]
    fn closed_surfaces_stay_closed_and_close_to_the_original() {
        for field in [&sphere(0.6) as &dyn Fn([f32; 3]) -> f32, &torus(0.5, 0.2)] {
            let mut mesh = extract_dense(&dense_from(64, field));
            let (volume, euler) = (mesh.volume(), mesh.topology().euler_characteristic);
            let report = mesh.simplify(2000, 1.0);
            assert!(report.faces_before > 10_000);
            assert!(
                report.faces_after <= 2000 && report.faces_after > 1500,
                "{report:?}"
            );
            assert_eq!(mesh.faces.len(), report.faces_after);
            let t = mesh.topology();
            assert!(t.is_closed_manifold(), "{t:?}");
            assert_eq!(t.euler_characteristic, euler);
            assert!(((mesh.volume() - volume) / volume).abs() < 0.02);
            assert!(mesh.vertices.len() < report.faces_after);
        }
    }

    #[test]
    fn open_border_is_kept_in_place() {
        // A slab cut by the grid's top and bottom faces: two open boundary loops.
        let mut mesh = extract_dense(&dense_from(32, |p| 0.5 - p[0].hypot(p[1])));
        let border = |m: &crate::Mesh| {
            let mut counts = std::collections::HashMap::new();
            for f in &m.faces {
                for (a, b) in [(f[0], f[1]), (f[1], f[2]), (f[2], f[0])] {
                    *counts.entry((a.min(b), a.max(b))).or_insert(0) += 1;
                }
            }
            let mut points: Vec<[u32; 3]> = counts
                .into_iter()
                .filter(|&(_, n)| n == 1)
                .flat_map(|((a, b), _)| [a, b])
                .map(|v| m.vertices[v as usize].map(f32::to_bits))
                .collect();
            points.sort_unstable();
            points.dedup();
            points
        };
        let before = border(&mesh);
        assert!(!before.is_empty());
        mesh.simplify(mesh.faces.len() / 10, 1.0);
        assert_eq!(border(&mesh), before);
    }

    #[test]
    fn error_limit_stops_early() {
        let mut mesh = extract_dense(&dense_from(48, sphere(0.6)));
        let report = mesh.simplify(10, 1e-4);
        assert!(report.faces_after > 1000, "{report:?}");
        assert!(report.relative_error <= 1e-4);
    }
}
