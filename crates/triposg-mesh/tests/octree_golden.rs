//! The octree driver with the tiny VAE as its SDF, against upstream `flash_extract_geometry`
//! run by `tools/golden/make_octree_fixtures.py` on the same VAE and latents.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use triposg_mesh::octree::{refine, resolutions};
use triposg_mesh::{extract_geometry, Mesh, OctreeOptions, VertexFrame};
use triposg_model::checkpoint::Checkpoint;

/// Must match DEPTH, BOUNDS, RADIUS and SPHERE_SLOPE of the script.
const DEPTH: u32 = 8;
const BOUND: f64 = 1.005;
const RADIUS: f32 = 0.3;
const SPHERE_SLOPE: f32 = 150.0;
const FINE_VOXEL: f64 = 2.0 * BOUND / (1u64 << DEPTH) as f64;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn golden() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join("golden/octree.safetensors"), &Device::Cpu)
        .expect("run tools/golden/make_octree_fixtures.py")
}

fn options() -> OctreeOptions {
    OctreeOptions {
        bbox_min: [-BOUND; 3],
        bbox_max: [BOUND; 3],
        depth: DEPTH,
        // Upstream's chunk size; batching must not change any value.
        batch_size: 10_000,
        frame: VertexFrame::Upstream,
        // Upstream leaves surfaces at the box open; its query sets are what is compared.
        close_at_bounds: false,
    }
}

/// The script's SDF: the tiny VAE's logits at the fixture's latents plus an analytic sphere
/// term (the tiny random VAE alone has no surface; see `sphere_plus_vae` there). Records
/// every query in call order.
struct Vae {
    vae: triposg_model::vae::TripoSGVae,
    kv: Tensor,
    points: Vec<[f32; 3]>,
    values: Vec<f32>,
}

impl Vae {
    fn new(latents: &Tensor) -> Self {
        let vae = Checkpoint::new(fixtures().join("tiny/TripoSG"))
            .load_vae(DType::F32, &Device::Cpu)
            .unwrap();
        let kv = vae.kv_tokens(latents).unwrap();
        Self {
            vae,
            kv,
            points: Vec::new(),
            values: Vec::new(),
        }
    }

    fn query(&mut self, points: &[[f32; 3]]) -> candle_core::Result<Vec<f32>> {
        let flat: Vec<f32> = points.iter().flatten().copied().collect();
        let xyz = Tensor::from_vec(flat, (1, points.len(), 3), &Device::Cpu)?;
        let mut values = self
            .vae
            .query(&self.kv, &xyz)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for (v, p) in values.iter_mut().zip(points) {
            *v += SPHERE_SLOPE * (RADIUS - (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt());
        }
        self.points.extend_from_slice(points);
        self.values.extend_from_slice(&values);
        Ok(values)
    }
}

fn rel_l2(ours: &[f32], theirs: &[f32]) -> f64 {
    assert_eq!(ours.len(), theirs.len());
    let (diff, norm) = ours
        .iter()
        .zip(theirs)
        .fold((0.0, 0.0), |(d, n), (&a, &b)| {
            let (a, b) = (a as f64, b as f64);
            (d + (a - b) * (a - b), n + b * b)
        });
    (diff / norm).sqrt()
}

fn vec3(t: &Tensor) -> Vec<[f32; 3]> {
    t.to_vec2::<f32>()
        .unwrap()
        .into_iter()
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

#[test]
fn refinement_queries_and_sdf_match_upstream() {
    let io = golden();
    let mut vae = Vae::new(&io["latents"]);
    let refinement = refine(&options(), |p: &[[f32; 3]]| vae.query(p)).unwrap();
    assert_eq!(
        refinement
            .stats
            .iter()
            .map(|s| s.resolution)
            .collect::<Vec<_>>(),
        resolutions(DEPTH)
    );
    let mut start = 0;
    for (level, stats) in refinement.stats.iter().enumerate() {
        let range = start..start + stats.queries;
        start = range.end;
        let points = &vae.points[range.clone()];
        let expected = if level == 0 {
            let axis = io["coarse_axis"].to_vec1::<f32>().unwrap();
            let a = &axis;
            a.iter()
                .flat_map(|&x| {
                    a.iter()
                        .flat_map(move |&y| a.iter().map(move |&z| [x, y, z]))
                })
                .collect()
        } else {
            vec3(&io[&format!("points_{level}")])
        };
        // Same points bit for bit, in the same (x-major) order.
        assert_eq!(
            points.len(),
            expected.len(),
            "level {level}: query count differs from upstream"
        );
        let first_mismatch = points.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(first_mismatch, None, "level {level}: query points differ");
        let theirs = io[&format!("sdf_{level}")].to_vec1::<f32>().unwrap();
        let err = rel_l2(&vae.values[range], &theirs);
        eprintln!(
            "level {}: {} queries, sdf rel L2 {err:.2e}",
            stats.resolution, stats.queries
        );
        assert!(err < 1e-4, "level {level}: sdf rel L2 {err}");
    }
    assert_eq!(start, vae.points.len());
}

#[test]
fn mesh_matches_upstream() {
    let io = golden();
    let mut vae = Vae::new(&io["latents"]);
    let ours = extract_geometry(&options(), |p: &[[f32; 3]]| vae.query(p)).unwrap();
    let faces = io["mesh_faces"].to_vec2::<i32>().unwrap();
    let theirs = Mesh::new(
        vec3(&io["mesh_vertices"]),
        faces
            .iter()
            .map(|f| [0, 1, 2].map(|i| f[i] as u32))
            .collect(),
    );
    let (n_ours, n_theirs) = (ours.vertices.len() as f64, theirs.vertices.len() as f64);
    eprintln!(
        "vertices: ours {n_ours}, upstream (marching-cubes stand-in) {n_theirs}; faces {} / {}",
        ours.faces.len(),
        theirs.faces.len()
    );
    assert!((n_ours / n_theirs - 1.0).abs() < 0.02);
    // Also catches a flipped winding: both are wound outward.
    let (v_ours, v_theirs) = (ours.volume(), theirs.volume());
    eprintln!("volume: ours {v_ours:.6}, upstream {v_theirs:.6}");
    assert!((v_ours / v_theirs - 1.0).abs() < 1e-3);
    let topology = ours.topology();
    assert!(topology.is_closed_manifold(), "{topology:?}");
    let hausdorff = distance_bound(&ours, &theirs).max(distance_bound(&theirs, &ours));
    eprintln!(
        "symmetric Hausdorff {hausdorff:.2e} = {:.3} fine voxel",
        hausdorff / FINE_VOXEL
    );
    assert!(hausdorff < FINE_VOXEL);
}

/// The largest distance from a vertex or face centroid of `a` to the surface of `b`; beyond
/// one fine voxel it is only known to be at least that much, which is all the test needs.
fn distance_bound(a: &Mesh, b: &Mesh) -> f64 {
    let grid = TriangleGrid::new(b, FINE_VOXEL);
    let centroids = a.faces.iter().map(|f| {
        let [p, q, r] = f.map(|v| a.vertices[v as usize]);
        [0, 1, 2].map(|i| (p[i] + q[i] + r[i]) / 3.0)
    });
    a.vertices
        .iter()
        .copied()
        .chain(centroids)
        .map(|p| grid.distance(p.map(f64::from)))
        .fold(0.0, f64::max)
}

/// Triangles binned by bounding box into cubes of side `cell`, so a point only meets the
/// triangles of the 27 cubes around it: exact distances up to `cell`.
struct TriangleGrid<'a> {
    mesh: &'a Mesh,
    cell: f64,
    bins: HashMap<[i64; 3], Vec<usize>>,
}

impl<'a> TriangleGrid<'a> {
    fn new(mesh: &'a Mesh, cell: f64) -> Self {
        let mut bins: HashMap<[i64; 3], Vec<usize>> = HashMap::new();
        for (t, face) in mesh.faces.iter().enumerate() {
            let corners = face.map(|v| mesh.vertices[v as usize].map(f64::from));
            let bin = |pick: fn(f64, f64) -> f64, start: f64| {
                [0, 1, 2].map(|i| {
                    let extreme = corners.iter().map(|c| c[i]).fold(start, pick);
                    (extreme / cell).floor() as i64
                })
            };
            let (lo, hi) = (
                bin(f64::min, f64::INFINITY),
                bin(f64::max, f64::NEG_INFINITY),
            );
            for x in lo[0]..=hi[0] {
                for y in lo[1]..=hi[1] {
                    for z in lo[2]..=hi[2] {
                        bins.entry([x, y, z]).or_default().push(t);
                    }
                }
            }
        }
        Self { mesh, cell, bins }
    }

    /// Distance to the nearest triangle, or `cell` if none is that close.
    fn distance(&self, p: [f64; 3]) -> f64 {
        let c = p.map(|x| (x / self.cell).floor() as i64);
        let mut best = self.cell;
        for dx in -1..=1 {
            for dy in -1..=1 {
                for dz in -1..=1 {
                    let Some(triangles) = self.bins.get(&[c[0] + dx, c[1] + dy, c[2] + dz]) else {
                        continue;
                    };
                    for &t in triangles {
                        let tri = self.mesh.faces[t]
                            .map(|v| self.mesh.vertices[v as usize].map(f64::from));
                        best = best.min(point_triangle_distance(p, tri));
                    }
                }
            }
        }
        best
    }
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Ericson, Real-Time Collision Detection, 5.1.5: closest point by Voronoi region of the
/// triangle.
fn point_triangle_distance(p: [f64; 3], [a, b, c]: [[f64; 3]; 3]) -> f64 {
    let (ab, ac, ap) = (sub(b, a), sub(c, a), sub(p, a));
    let along = |s: f64, t: f64| [0, 1, 2].map(|i| a[i] + s * ab[i] + t * ac[i]);
    let (d1, d2) = (dot(ab, ap), dot(ac, ap));
    let closest = if d1 <= 0.0 && d2 <= 0.0 {
        a
    } else {
        let bp = sub(p, b);
        let (d3, d4) = (dot(ab, bp), dot(ac, bp));
        let cp = sub(p, c);
        let (d5, d6) = (dot(ab, cp), dot(ac, cp));
        let (vc, vb, va) = (d1 * d4 - d3 * d2, d5 * d2 - d1 * d6, d3 * d6 - d5 * d4);
        if d3 >= 0.0 && d4 <= d3 {
            b
        } else if d6 >= 0.0 && d5 <= d6 {
            c
        } else if vc <= 0.0 && d1 >= 0.0 && d3 <= 0.0 {
            along(d1 / (d1 - d3), 0.0)
        } else if vb <= 0.0 && d2 >= 0.0 && d6 <= 0.0 {
            along(0.0, d2 / (d2 - d6))
        } else if va <= 0.0 && d4 - d3 >= 0.0 && d5 - d6 >= 0.0 {
            let w = (d4 - d3) / ((d4 - d3) + (d5 - d6));
            [0, 1, 2].map(|i| b[i] + w * (c[i] - b[i]))
        } else {
            let denom = 1.0 / (va + vb + vc);
            along(vb * denom, vc * denom)
        }
    };
    let d = sub(p, closest);
    dot(d, d).sqrt()
}
