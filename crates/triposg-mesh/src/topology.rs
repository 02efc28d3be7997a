//! Closedness and manifoldness checks: what a slicer or a boolean op needs from a mesh.

use rayon::prelude::*;

use crate::mesh::Mesh;
use crate::rows::{compressed_rows, sort_rows};

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

/// One face's use of an undirected edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EdgeUse {
    pub face: u32,
    /// The face walks the edge from its lower to its higher vertex index.
    pub forward: bool,
}

/// The faces on every undirected edge, edges in order of (low, high) vertex index and faces
/// in index order. Built from integer keys grouped by the edge's low vertex in two linear
/// passes, then each vertex's handful sorted: a hash map of per-edge lists costs an allocation
/// per edge and a hash per corner, and one sort of all the keys took several times as long.
pub(crate) struct EdgeFaces {
    edges: Vec<(u32, u32)>,
    /// Edge `i` is used by `uses[starts[i]..starts[i + 1]]`.
    starts: Vec<u32>,
    uses: Vec<EdgeUse>,
}

impl EdgeFaces {
    pub(crate) fn of(mesh: &Mesh) -> Self {
        debug_assert!(
            mesh.faces.len() < 1 << 31,
            "face indices take 31 bits of a key"
        );
        // Per low vertex, keys of the high vertex, then face and direction, so sorting a
        // vertex's keys groups its edges and keeps each edge's faces in order.
        let (rows, mut keys) = compressed_rows(mesh.index_bound(), || {
            mesh.faces.iter().enumerate().flat_map(|(i, f)| {
                [(f[0], f[1]), (f[1], f[2]), (f[2], f[0])].map(|(a, b)| {
                    let key = (u64::from(a.max(b)) << 32) | ((i as u64) << 1) | u64::from(a < b);
                    (a.min(b) as usize, key)
                })
            })
        });
        sort_rows(&rows, &mut keys);
        let mut table = Self {
            edges: Vec::with_capacity(keys.len() / 2 + 1),
            starts: Vec::with_capacity(keys.len() / 2 + 2),
            uses: Vec::with_capacity(keys.len()),
        };
        for (low, w) in rows.windows(2).enumerate() {
            let mut previous = None;
            for &key in &keys[w[0] as usize..w[1] as usize] {
                let high = (key >> 32) as u32;
                if previous != Some(high) {
                    previous = Some(high);
                    table.edges.push((low as u32, high));
                    table.starts.push(table.uses.len() as u32);
                }
                table.uses.push(EdgeUse {
                    face: (key as u32) >> 1,
                    forward: key & 1 == 1,
                });
            }
        }
        table.starts.push(table.uses.len() as u32);
        table
    }

    pub(crate) fn len(&self) -> usize {
        self.edges.len()
    }

    /// Every edge (low, high) with its faces.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ((u32, u32), &[EdgeUse])> {
        self.edges
            .iter()
            .zip(self.starts.windows(2))
            .map(|(&e, s)| (e, &self.uses[s[0] as usize..s[1] as usize]))
    }

    /// The faces on the edge between `a` and `b` (either order); none if no face uses it.
    pub(crate) fn faces_of(&self, a: u32, b: u32) -> &[EdgeUse] {
        match self.edges.binary_search(&(a.min(b), a.max(b))) {
            Ok(i) => &self.uses[self.starts[i] as usize..self.starts[i + 1] as usize],
            Err(_) => &[],
        }
    }
}

impl Mesh {
    /// Runs `work` (the mesh's file writes) while [`Topology::is_closed_manifold`] is checked
    /// on another thread: the check takes about as long as the writing.
    pub fn closed_manifold_beside<T>(&self, work: impl FnOnce() -> T) -> (T, bool) {
        std::thread::scope(|s| {
            let closed = s.spawn(|| self.topology().is_closed_manifold());
            let done = work();
            (done, crate::join(closed))
        })
    }

    pub fn topology(&self) -> Topology {
        let edges = EdgeFaces::of(self);
        let mut topology = Topology {
            boundary_edges: 0,
            non_manifold_edges: 0,
            inconsistent_edges: 0,
            non_manifold_vertices: 0,
            euler_characteristic: 0,
        };
        for (_, uses) in edges.iter() {
            match uses {
                [_] => topology.boundary_edges += 1,
                [f, g] if f.forward == g.forward => topology.inconsistent_edges += 1,
                [_, _] => {}
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
        // Each vertex's link edges as compressed rows, in face order: a link has a handful of
        // edges, so searching it beats a hash map over all corners.
        let (starts, links) = crate::rows::compressed_rows(self.vertices.len(), || {
            self.faces.iter().flat_map(|f| {
                (0..3).map(move |i| (f[i] as usize, (f[(i + 1) % 3], f[(i + 2) % 3])))
            })
        });
        (0..self.vertices.len())
            .into_par_iter()
            .filter(|&v| referenced[v])
            .filter(|&v| {
                let link = &links[starts[v] as usize..starts[v + 1] as usize];
                let first = link[0].0;
                let mut current = first;
                let mut steps = 0;
                loop {
                    current = link
                        .iter()
                        .find(|e| e.0 == current)
                        .expect("a closed consistent surface continues every link")
                        .1;
                    steps += 1;
                    if current == first || steps > link.len() {
                        break;
                    }
                }
                steps != link.len()
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
