//! The triangle mesh shared by every later stage (cleanup, print preparation, exporters).

use ahash::AHashMap;

/// An indexed triangle mesh. Faces are counter-clockwise seen from outside (right-hand rule
/// normals point out of the solid), which is what glTF, STL and 3MF expect.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    pub vertices: Vec<[f32; 3]>,
    pub faces: Vec<[u32; 3]>,
}

/// Axis-aligned bounding box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aabb {
    pub min: [f32; 3],
    pub max: [f32; 3],
}

impl Aabb {
    pub fn size(&self) -> [f32; 3] {
        [
            self.max[0] - self.min[0],
            self.max[1] - self.min[1],
            self.max[2] - self.min[2],
        ]
    }
}

pub(crate) fn sub(a: [f32; 3], b: [f32; 3]) -> [f64; 3] {
    [
        a[0] as f64 - b[0] as f64,
        a[1] as f64 - b[1] as f64,
        a[2] as f64 - b[2] as f64,
    ]
}

pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub(crate) fn norm(a: [f64; 3]) -> f64 {
    (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt()
}

impl Mesh {
    pub fn new(vertices: Vec<[f32; 3]>, faces: Vec<[u32; 3]>) -> Self {
        Self { vertices, faces }
    }

    /// One past the largest vertex index a face uses (0 without faces): what tables indexed
    /// by vertex need, even where a face points past the vertex list.
    pub(crate) fn index_bound(&self) -> usize {
        self.faces
            .iter()
            .flatten()
            .max()
            .map_or(0, |&v| v as usize + 1)
    }

    pub fn is_empty(&self) -> bool {
        self.faces.is_empty()
    }

    pub(crate) fn corners(&self, face: [u32; 3]) -> [[f32; 3]; 3] {
        face.map(|v| self.vertices[v as usize])
    }

    /// Twice the area vector of a face, in f64 so that thin triangles of large meshes keep
    /// their sign when summed.
    pub(crate) fn face_cross(&self, face: [u32; 3]) -> [f64; 3] {
        let [a, b, c] = self.corners(face);
        cross(sub(b, a), sub(c, a))
    }

    /// `None` for a mesh without vertices.
    pub fn bbox(&self) -> Option<Aabb> {
        let first = *self.vertices.first()?;
        Some(self.vertices.iter().fold(
            Aabb {
                min: first,
                max: first,
            },
            |acc, v| Aabb {
                min: [0, 1, 2].map(|i| acc.min[i].min(v[i])),
                max: [0, 1, 2].map(|i| acc.max[i].max(v[i])),
            },
        ))
    }

    pub fn area(&self) -> f64 {
        self.faces
            .iter()
            .map(|&f| 0.5 * norm(self.face_cross(f)))
            .sum()
    }

    /// Signed volume by the divergence theorem: positive for a closed mesh whose faces point
    /// outward, meaningless for an open one.
    pub fn volume(&self) -> f64 {
        self.faces
            .iter()
            .map(|&f| {
                let [a, b, c] = self.corners(f).map(|p| p.map(f64::from));
                let bc = cross(b, c);
                (a[0] * bc[0] + a[1] * bc[1] + a[2] * bc[2]) / 6.0
            })
            .sum()
    }

    /// Area-weighted vertex normals (unit length; zero for vertices of degenerate faces only).
    pub fn vertex_normals(&self) -> Vec<[f32; 3]> {
        let mut acc = vec![[0f64; 3]; self.vertices.len()];
        for &f in &self.faces {
            let n = self.face_cross(f);
            for v in f {
                for i in 0..3 {
                    acc[v as usize][i] += n[i];
                }
            }
        }
        acc.into_iter()
            .map(|n| {
                let len = norm(n);
                if len > 0.0 {
                    n.map(|x| (x / len) as f32)
                } else {
                    [0.0; 3]
                }
            })
            .collect()
    }

    /// Merges vertices closer than `tolerance` (in each axis); `tolerance = 0` merges only
    /// bit-identical positions, which is what triangle-soup formats like STL need.
    /// Faces are kept as they are, so faces that collapse become degenerate and are left for
    /// [`Mesh::cleanup`] to drop.
    pub fn weld(&mut self, tolerance: f32) {
        let all = vec![true; self.vertices.len()];
        self.weld_selected(tolerance, &all);
    }

    /// [`Mesh::weld`] among the `selected` vertices only (the others are kept as they are);
    /// returns how many vertices merged into others.
    pub fn weld_selected(&mut self, tolerance: f32, selected: &[bool]) -> usize {
        let cell = if tolerance > 0.0 { tolerance } else { 1.0 };
        let key = |p: [f32; 3]| -> [i64; 3] {
            if tolerance > 0.0 {
                p.map(|x| (x / cell).floor() as i64)
            } else {
                p.map(|x| x.to_bits() as i64)
            }
        };
        let mut buckets: AHashMap<[i64; 3], Vec<u32>> = AHashMap::new();
        let mut remap = Vec::with_capacity(self.vertices.len());
        let mut kept: Vec<[f32; 3]> = Vec::new();
        for (&p, &weldable) in self.vertices.iter().zip(selected) {
            if !weldable {
                kept.push(p);
                remap.push((kept.len() - 1) as u32);
                continue;
            }
            let k = key(p);
            let found = if tolerance > 0.0 {
                neighbours(k).find_map(|nk| {
                    buckets.get(&nk)?.iter().copied().find(|&i| {
                        let q = kept[i as usize];
                        (0..3).all(|a| (p[a] - q[a]).abs() <= tolerance)
                    })
                })
            } else {
                buckets.get(&k).and_then(|b| b.first().copied())
            };
            let index = found.unwrap_or_else(|| {
                kept.push(p);
                let i = (kept.len() - 1) as u32;
                buckets.entry(k).or_default().push(i);
                i
            });
            remap.push(index);
        }
        for f in &mut self.faces {
            *f = f.map(|v| remap[v as usize]);
        }
        let merged = self.vertices.len() - kept.len();
        self.vertices = kept;
        merged
    }
}

fn neighbours(k: [i64; 3]) -> impl Iterator<Item = [i64; 3]> {
    (-1..=1).flat_map(move |dx| {
        (-1..=1).flat_map(move |dy| (-1..=1).map(move |dz| [k[0] + dx, k[1] + dy, k[2] + dz]))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Unit cube [0,1]^3 with outward faces: the smallest closed mesh with known measures.
    pub(crate) fn unit_cube() -> Mesh {
        let vertices = (0..8)
            .map(|i| [(i & 1) as f32, ((i >> 1) & 1) as f32, ((i >> 2) & 1) as f32])
            .collect();
        let quads = [
            [0, 2, 3, 1], // z = 0, normal -z
            [4, 5, 7, 6], // z = 1
            [0, 1, 5, 4], // y = 0
            [2, 6, 7, 3], // y = 1
            [0, 4, 6, 2], // x = 0
            [1, 3, 7, 5], // x = 1
        ];
        let faces = quads
            .iter()
            .flat_map(|q| [[q[0], q[1], q[2]], [q[0], q[2], q[3]]])
            .collect();
        Mesh::new(vertices, faces)
    }

    #[test]
    fn cube_measures() {
        let cube = unit_cube();
        assert!((cube.area() - 6.0).abs() < 1e-12);
        assert!((cube.volume() - 1.0).abs() < 1e-12);
        let bbox = cube.bbox().unwrap();
        assert_eq!(bbox.min, [0.0; 3]);
        assert_eq!(bbox.size(), [1.0; 3]);
        assert!(Mesh::default().bbox().is_none());
    }

    #[test]
    fn normals_point_outward() {
        let cube = unit_cube();
        for (v, n) in cube.vertices.iter().zip(cube.vertex_normals()) {
            // Which diagonal splits each face decides the exact weights; the direction must
            // still be into the corner's octant and the length one.
            let len = n.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((len - 1.0).abs() < 1e-6);
            for a in 0..3 {
                let outward = if v[a] > 0.5 { 1.0 } else { -1.0 };
                assert!(n[a] * outward > 0.3, "{v:?} {n:?}");
            }
        }
    }

    #[test]
    fn weld_merges_soup() {
        let cube = unit_cube();
        let soup_vertices: Vec<[f32; 3]> = cube
            .faces
            .iter()
            .flat_map(|f| cube.corners(*f))
            .map(|p| p.map(|x| x + 1e-6))
            .collect();
        let soup_faces = (0..cube.faces.len() as u32)
            .map(|i| [3 * i, 3 * i + 1, 3 * i + 2])
            .collect();
        let mut exact = Mesh::new(soup_vertices, soup_faces);
        let mut near = exact.clone();
        exact.weld(0.0);
        assert_eq!(exact.vertices.len(), 8);
        // Copies of one corner now differ by up to 2e-5, as after a lossy round trip.
        for (i, v) in near.vertices.iter_mut().enumerate() {
            v[0] += (i % 3) as f32 * 1e-5;
        }
        let mut strict = near.clone();
        strict.weld(0.0);
        assert!(strict.vertices.len() > 8);
        near.weld(1e-4);
        assert_eq!(near.vertices.len(), 8);
        assert!((near.volume() - 1.0).abs() < 1e-3);
    }
}
