//! Closedness and manifoldness checks: what a slicer or a boolean op needs from a mesh.

use std::collections::HashMap;

use crate::mesh::Mesh;

/// Edge and vertex statistics of a mesh. A printable solid has every count zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    /// Edges used by a single face: holes.
    pub boundary_edges: usize,
    /// Edges used by more than two faces.
    pub non_manifold_edges: usize,
    /// Edges used by two faces that traverse it in the same direction (flipped neighbour).
    pub inconsistent_edges: usize,
    /// Vertices whose faces form more than one fan (two surfaces touching at a point).
    /// Only counted when every edge is manifold and consistent, since fans are undefined otherwise.
    pub non_manifold_vertices: usize,
    /// V - E + F over referenced vertices: 2 per sphere-like component, 0 per torus.
    pub euler_characteristic: i64,
}

impl Topology {
    /// Every edge shared by exactly two faces.
    pub fn is_watertight(&self) -> bool {
        self.boundary_edges == 0 && self.non_manifold_edges == 0
    }

    /// Watertight, consistently oriented and manifold at every vertex.
    pub fn is_closed_manifold(&self) -> bool {
        self.is_watertight() && self.inconsistent_edges == 0 && self.non_manifold_vertices == 0
    }
}

impl Mesh {
    pub fn topology(&self) -> Topology {
        // Per undirected edge: how often it is walked low->high and high->low.
        let mut edges: HashMap<(u32, u32), (u32, u32)> =
            HashMap::with_capacity(self.faces.len() * 2);
        for f in &self.faces {
            for (a, b) in [(f[0], f[1]), (f[1], f[2]), (f[2], f[0])] {
                let entry = edges.entry((a.min(b), a.max(b))).or_default();
                if a < b {
                    entry.0 += 1;
                } else {
                    entry.1 += 1;
                }
            }
        }
        let mut topology = Topology {
            boundary_edges: 0,
            non_manifold_edges: 0,
            inconsistent_edges: 0,
            non_manifold_vertices: 0,
            euler_characteristic: 0,
        };
        for &(forward, backward) in edges.values() {
            match forward + backward {
                1 => topology.boundary_edges += 1,
                2 if forward != 1 => topology.inconsistent_edges += 1,
                2 => {}
                _ => topology.non_manifold_edges += 1,
            }
        }
        let mut referenced = vec![false; self.vertices.len()];
        for f in &self.faces {
            for &v in f {
                referenced[v as usize] = true;
            }
        }
        let used_vertices = referenced.iter().filter(|&&r| r).count() as i64;
        topology.euler_characteristic =
            used_vertices - edges.len() as i64 + self.faces.len() as i64;
        if topology.is_watertight() && topology.inconsistent_edges == 0 {
            topology.non_manifold_vertices = self.count_multi_fan_vertices(&referenced);
        }
        topology
    }

    /// In a closed oriented surface the edges opposite a vertex form cycles (its link); a
    /// manifold vertex has exactly one. Walks one cycle per vertex and compares its length
    /// with the vertex's face count.
    fn count_multi_fan_vertices(&self, referenced: &[bool]) -> usize {
        let mut next: HashMap<(u32, u32), u32> = HashMap::with_capacity(self.faces.len() * 3);
        let mut start: Vec<Option<u32>> = vec![None; self.vertices.len()];
        let mut valence = vec![0usize; self.vertices.len()];
        for f in &self.faces {
            for i in 0..3 {
                let (v, a, b) = (f[i], f[(i + 1) % 3], f[(i + 2) % 3]);
                next.insert((v, a), b);
                start[v as usize].get_or_insert(a);
                valence[v as usize] += 1;
            }
        }
        (0..self.vertices.len())
            .filter(|&v| referenced[v])
            .filter(|&v| {
                let first = start[v].expect("referenced vertex has a face");
                let mut current = first;
                let mut steps = 0;
                loop {
                    current = next[&(v as u32, current)];
                    steps += 1;
                    if current == first || steps > valence[v] {
                        break;
                    }
                }
                steps != valence[v]
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use crate::mesh::tests::unit_cube;

    #[test]
    fn cube_is_closed_sphere() {
        let t = unit_cube().topology();
        assert!(t.is_closed_manifold(), "{t:?}");
        assert_eq!(t.euler_characteristic, 2);
    }

    #[test]
    fn detects_hole_flip_and_fin() {
        let mut holed = unit_cube();
        holed.faces.pop();
        let t = holed.topology();
        assert_eq!(t.boundary_edges, 3);
        assert!(!t.is_watertight());

        let mut flipped = unit_cube();
        flipped.faces[0].swap(1, 2);
        let t = flipped.topology();
        assert!(t.is_watertight());
        assert_eq!(t.inconsistent_edges, 3);
        assert!(!t.is_closed_manifold());

        let mut fin = unit_cube();
        fin.vertices.push([0.5, 0.5, 0.5]);
        fin.faces.push([0, 3, 8]);
        fin.faces.push([3, 0, 8]);
        let t = fin.topology();
        assert_eq!(t.non_manifold_edges, 1);
    }

    #[test]
    fn detects_cubes_touching_at_a_corner() {
        let a = unit_cube();
        let mut twin = a.clone();
        let n = a.vertices.len() as u32;
        // Second cube in [1,2]^3 sharing the vertex (1,1,1), index 7, with the first.
        twin.vertices
            .extend(a.vertices.iter().map(|v| v.map(|x| x + 1.0)));
        twin.faces.extend(
            a.faces
                .iter()
                .map(|f| f.map(|v| if v == 0 { 7 } else { v + n })),
        );
        let t = twin.topology();
        assert!(t.is_watertight() && t.inconsistent_edges == 0, "{t:?}");
        assert_eq!(t.non_manifold_vertices, 1);
        assert!(!t.is_closed_manifold());
    }
}
