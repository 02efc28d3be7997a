use std::convert::Infallible;
use std::f64::consts::PI;

use super::*;

/// Analytic SDFs are in world units; the decoder's logits are steeper. Scaling by 30 puts
/// upstream's |logit| < 0.95 band at about one coarse voxel, so refinement stays sparse.
const LOGIT_SCALE: f32 = 30.0;

fn logits(
    sdf: impl Fn([f32; 3]) -> f32,
) -> impl FnMut(&[[f32; 3]]) -> Result<Vec<f32>, Infallible> {
    move |points| Ok(points.iter().map(|&p| -LOGIT_SCALE * sdf(p)).collect())
}

fn length(p: [f32; 3]) -> f32 {
    (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt()
}

fn sphere_sdf(centre: [f32; 3], r: f32) -> impl Fn([f32; 3]) -> f32 {
    move |p| length([p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]]) - r
}

fn options(depth: u32) -> OctreeOptions {
    OctreeOptions {
        depth,
        frame: VertexFrame::Sampled,
        ..OctreeOptions::default()
    }
}

struct Expected {
    euler: &'static [i64],
    volume: f64,
    area: f64,
    tolerance: f64,
}

fn check(depth: u32, sdf: impl Fn([f32; 3]) -> f32, expected: Expected) -> Refinement {
    let opts = options(depth);
    let mesh = extract_geometry(&opts, logits(&sdf)).unwrap();
    let t = mesh.topology();
    assert!(t.is_closed_manifold(), "{t:?}");
    assert!(expected.euler.contains(&t.euler_characteristic), "{t:?}");
    let dv = (mesh.volume() - expected.volume) / expected.volume;
    let da = (mesh.area() - expected.area) / expected.area;
    assert!(dv.abs() < expected.tolerance, "volume off by {dv}");
    assert!(da.abs() < expected.tolerance, "area off by {da}");
    let refinement = refine(&opts, logits(&sdf)).unwrap();
    let dense = (refinement.level.samples_per_axis() as f64).powi(3);
    assert!(
        (refinement.samples.len() as f64) < 0.15 * dense,
        "refinement is not sparse"
    );
    refinement
}

#[test]
fn resolutions_match_upstream() {
    assert_eq!(resolutions(7), [63, 126]);
    assert_eq!(resolutions(8), [63, 126, 252]);
    assert_eq!(resolutions(9), [63, 126, 252, 504]);
    assert_eq!(resolutions(10), [63, 126, 252, 504, 1008]);
}

#[test]
fn positions_are_rounded_like_upstream() {
    let opts = OctreeOptions::default();
    let coarse = opts.level(63, true);
    assert_eq!(
        coarse.position([0, 63, 1]),
        [-1.005, 1.005, (2.01f64 / 63.0 - 1.005) as f32]
    );
    let fine = opts.level(504, false);
    let step = (2.01f64 / 504.0) as f32;
    assert_eq!(fine.position([504, 0, 7])[0], 504.0 * step + -1.005f32);
    assert_eq!(fine.position([504, 0, 7])[2], 7.0 * step + -1.005f32);
}

#[test]
fn sphere() {
    let r = 0.5f64;
    let refinement = check(
        8,
        sphere_sdf([0.0; 3], r as f32),
        Expected {
            euler: &[2],
            volume: 4.0 / 3.0 * PI * r.powi(3),
            area: 4.0 * PI * r * r,
            tolerance: 0.001,
        },
    );
    let queries: Vec<usize> = refinement.stats.iter().map(|s| s.queries).collect();
    assert_eq!(queries[0], 64 * 64 * 64);
    assert_eq!(queries.len(), 3);
    assert_eq!(refinement.samples.len(), queries[2]);
}

#[test]
fn torus() {
    let (major, minor) = (0.5f64, 0.2f64);
    check(
        7,
        move |p| (((p[0] * p[0] + p[1] * p[1]).sqrt() - major as f32).hypot(p[2])) - minor as f32,
        Expected {
            euler: &[0],
            volume: 2.0 * PI * PI * major * minor * minor,
            area: 4.0 * PI * PI * major * minor,
            tolerance: 0.003,
        },
    );
}

#[test]
fn thin_plate() {
    // 0.04 thick: 2.5 final voxels and barely more than one coarse voxel at depth 7.
    let half = [0.5f32, 0.4, 0.02];
    let box_sdf = move |p: [f32; 3]| {
        let q = [0, 1, 2].map(|a| p[a].abs() - half[a]);
        let outside = length(q.map(|x| x.max(0.0)));
        outside + q[0].max(q[1]).max(q[2]).min(0.0)
    };
    let [a, b, c] = half.map(|x| 2.0 * x as f64);
    check(
        7,
        box_sdf,
        Expected {
            euler: &[2],
            volume: a * b * c,
            // Marching cubes chamfers the sharp edges by up to a voxel: looser bound.
            area: 2.0 * (a * b + b * c + a * c),
            tolerance: 0.02,
        },
    );
}

#[test]
fn two_touching_spheres() {
    let r = 0.4f32;
    let left = sphere_sdf([-r, 0.0, 0.0], r);
    let right = sphere_sdf([r, 0.0, 0.0], r);
    let rr = r as f64;
    // The contact point is a sample with value 0 (outside): the spheres may come out apart
    // (two components) or joined by a sub-voxel neck, but always closed and manifold.
    check(
        7,
        move |p| left(p).min(right(p)),
        Expected {
            euler: &[2, 4],
            volume: 2.0 * 4.0 / 3.0 * PI * rr.powi(3),
            area: 2.0 * 4.0 * PI * rr * rr,
            tolerance: 0.003,
        },
    );
}

#[test]
fn upstream_frame_shrinks_towards_bbox_min() {
    let sdf = sphere_sdf([0.2, 0.0, -0.1], 0.4);
    let sampled = extract_geometry(&options(7), logits(&sdf)).unwrap();
    let upstream_opts = OctreeOptions {
        frame: VertexFrame::Upstream,
        ..options(7)
    };
    let upstream = extract_geometry(&upstream_opts, logits(&sdf)).unwrap();
    assert_eq!(sampled.faces, upstream.faces);
    let scale = 126.0 / 128.0;
    for (s, u) in sampled.vertices.iter().zip(&upstream.vertices) {
        for a in 0..3 {
            let expected = (s[a] + 1.005) * scale - 1.005;
            assert!((u[a] - expected).abs() < 1e-5, "{s:?} -> {u:?}");
        }
    }
}

#[test]
fn surface_begun_during_the_decode_is_the_surface_after_it() {
    // Depth 8 and upstream's 10k batches: the finest level is ~20 parts of extraction
    // started batch by batch; closed at the bounds, the surface waits for the decode.
    let torus = |p: [f32; 3]| {
        let q = [p[0] - 0.1, p[1] + 0.05, p[2]];
        ((q[0] * q[0] + q[1] * q[1]).sqrt() - 0.55).hypot(q[2]) - 0.25
    };
    for close_at_bounds in [false, true] {
        let opts = OctreeOptions {
            depth: 8,
            batch_size: 10_000,
            frame: VertexFrame::Upstream,
            close_at_bounds,
            ..OctreeOptions::default()
        };
        let (refinement, begun) = refine_with_surface(&opts, logits(torus)).unwrap();
        let after = surface(&opts, &refine(&opts, logits(torus)).unwrap());
        assert!(after.faces.len() > 100_000, "{}", after.faces.len());
        assert!(
            begun.finish(&refinement) == after,
            "closed: {close_at_bounds}"
        );
    }
}

#[test]
fn batches_respect_the_batch_size_and_errors_propagate() {
    let opts = OctreeOptions {
        batch_size: 5000,
        ..options(7)
    };
    let mut calls = 0;
    let sdf = sphere_sdf([0.0; 3], 0.5);
    let counted = |points: &[[f32; 3]]| {
        assert!(!points.is_empty() && points.len() <= 5000);
        calls += 1;
        Ok::<_, Infallible>(points.iter().map(|&p| -LOGIT_SCALE * sdf(p)).collect())
    };
    let refinement = refine(&opts, counted).unwrap();
    let total: usize = refinement.stats.iter().map(|s| s.queries).sum();
    assert_eq!(
        calls,
        refinement
            .stats
            .iter()
            .map(|s| s.queries.div_ceil(5000))
            .sum::<usize>()
    );
    assert!(total > 64 * 64 * 64);

    #[derive(Debug, thiserror::Error)]
    #[error("decoder out of memory")]
    struct Oom;
    let failing = |_: &[[f32; 3]]| Err::<Vec<f32>, _>(Oom);
    assert!(matches!(
        refine(&opts, failing),
        Err(OctreeError::Query(Oom))
    ));
    let short = |p: &[[f32; 3]]| Ok::<_, Infallible>(vec![0.0; p.len() - 1]);
    assert!(matches!(
        refine(&opts, short),
        Err(OctreeError::QueryLength { .. })
    ));
    for bad in [
        OctreeOptions { depth: 6, ..opts },
        OctreeOptions {
            batch_size: 0,
            ..opts
        },
        OctreeOptions {
            bbox_max: [1.0, -2.0, 1.0],
            ..opts
        },
    ] {
        assert!(matches!(
            refine(&bad, logits(&sdf)),
            Err(OctreeError::InvalidOptions(_))
        ));
    }
}

/// A source that answers later, as a GPU does: it logs its calls, and each pending batch
/// carries the values of its own points.
struct Deferred<'a, F> {
    sdf: F,
    log: &'a mut Vec<(char, usize)>,
    fail_collect_at: Option<usize>,
}

impl<F: Fn([f32; 3]) -> f32> SdfSource for Deferred<'_, F> {
    type Error = usize;
    type Pending = (usize, Vec<f32>);

    fn submit(&mut self, points: &[[f32; 3]]) -> Result<(usize, Vec<f32>), usize> {
        let batch = self.log.iter().filter(|(c, _)| *c == 's').count();
        self.log.push(('s', batch));
        let values = points
            .iter()
            .map(|&p| -LOGIT_SCALE * (self.sdf)(p))
            .collect();
        Ok((batch, values))
    }

    fn collect(&mut self, (batch, values): (usize, Vec<f32>)) -> Result<Vec<f32>, usize> {
        self.log.push(('c', batch));
        // A GPU's pace: the finest level's extraction is set up while batches decode, and
        // starts its parts part-way through.
        std::thread::sleep(std::time::Duration::from_micros(500));
        if self.fail_collect_at == Some(batch) {
            return Err(batch);
        }
        Ok(values)
    }
}

#[test]
fn batches_are_submitted_before_the_previous_one_is_collected() {
    let opts = OctreeOptions {
        batch_size: 5000,
        close_at_bounds: false,
        ..options(7)
    };
    let sdf = sphere_sdf([0.1, -0.05, 0.0], 0.45);
    let mut log = Vec::new();
    let deferred = Deferred {
        sdf: &sdf,
        log: &mut log,
        fail_collect_at: None,
    };
    let (refinement, begun) = refine_with_surface(&opts, deferred).unwrap();
    let immediate = refine(&opts, logits(&sdf)).unwrap();
    assert_eq!(refinement.samples.indices(), immediate.samples.indices());
    assert_eq!(refinement.samples.values(), immediate.samples.values());
    assert_eq!(begun.finish(&refinement), surface(&opts, &immediate));

    // Within a level, batch i + 1 goes out before batch i is collected; every batch is
    // collected once, in order, and at most two are out at a time.
    let batches = log.iter().filter(|(c, _)| *c == 's').count();
    let expected: usize = immediate
        .stats
        .iter()
        .map(|s| s.queries.div_ceil(5000))
        .sum();
    assert_eq!(batches, expected);
    let collected: Vec<usize> = log.iter().filter(|(c, _)| *c == 'c').map(|e| e.1).collect();
    assert_eq!(collected, (0..batches).collect::<Vec<_>>());
    let mut out = 0i32;
    let mut overlapped = 0;
    for (i, &(c, batch)) in log.iter().enumerate() {
        out += if c == 's' { 1 } else { -1 };
        assert!((0..=2).contains(&out), "{out} batches out at {i}");
        if c == 'c' && i > 0 && log[i - 1] == ('s', batch + 1) {
            overlapped += 1;
        }
    }
    // Every batch but the last of each level is collected after its successor is submitted.
    assert_eq!(overlapped, batches - immediate.stats.len());

    let failing = Deferred {
        sdf: &sdf,
        log: &mut Vec::new(),
        fail_collect_at: Some(3),
    };
    assert!(matches!(refine(&opts, failing), Err(OctreeError::Query(3))));
}

#[test]
fn band_marks_sign_changes_and_small_values_only() {
    let geometry = GridGeometry {
        dims: [4, 1, 1],
        origin: [0.0; 3],
        spacing: [1.0; 3],
    };
    // Missing sample 3; sample 0 is far positive next to far negative; the rest far.
    let grid = SparseGrid::from_samples(vec![(0, 5.0), (1, -5.0), (2, -0.5)]);
    assert_eq!(near_surface(&grid, &geometry, false), [0, 1, 2]);
    let grid = SparseGrid::from_samples(vec![(0, 5.0), (1, 5.0), (2, -10000.0), (3, -5.0)]);
    assert_eq!(near_surface(&grid, &geometry, false), Vec::<u64>::new());
    // Closed bounds: inside samples on the grid's faces border the outside; in a 4x1x1 grid
    // every sample is on the y and z faces.
    assert_eq!(near_surface(&grid, &geometry, true), [0, 1]);
    let dilated = dilate(
        vec![0],
        &GridGeometry {
            dims: [5, 5, 5],
            ..geometry
        },
        2,
    );
    assert_eq!(dilated.len(), 27);
}

/// Dilation by runs against the definition: every sample within Chebyshev distance `radius` of
/// a point, on grids with unequal sides, points at the faces and corners, and radii up to
/// larger than the grid.
#[test]
fn dilation_is_every_sample_within_the_radius() {
    let geometry = GridGeometry {
        dims: [6, 9, 11],
        origin: [0.0; 3],
        spacing: [1.0; 3],
    };
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for radius in [0, 1, 2, 5, 12] {
        for count in [1, 3, 20, 60] {
            let mut points: Vec<u64> = (0..count).map(|_| next(geometry.len())).collect();
            points.extend([0, geometry.len() - 1]);
            let expected: Vec<u64> = (0..geometry.len())
                .filter(|&i| {
                    let q = geometry.point(i);
                    points.iter().any(|&p| {
                        let p = geometry.point(p);
                        (0..3).all(|a| p[a].abs_diff(q[a]) <= radius)
                    })
                })
                .collect();
            assert_eq!(
                dilate(points, &geometry, radius),
                expected,
                "radius {radius}"
            );
        }
    }
}

#[test]
fn solids_cut_by_the_box_are_capped_when_closing_at_bounds() {
    // A cylinder along z, longer than the box, plus a sphere sticking out of the +x face.
    let sdf = |p: [f32; 3]| {
        let cylinder = length([p[0], p[1], 0.0]) - 0.5;
        let sphere = length([p[0] - 0.8, p[1], p[2]]) - 0.35;
        cylinder.min(sphere)
    };
    let open = OctreeOptions {
        close_at_bounds: false,
        ..options(7)
    };
    let open_mesh = extract_geometry(&open, logits(&sdf)).unwrap();
    assert!(open_mesh.topology().boundary_edges > 0);
    let closed_mesh = extract_geometry(&options(7), logits(&sdf)).unwrap();
    let t = closed_mesh.topology();
    assert!(t.is_closed_manifold(), "{t:?}");
    assert_eq!(t.euler_characteristic, 2);
    // The cylinder is capped half a fine voxel beyond the box; the sphere's cap adds a little.
    let h = 2.01 / 128.0;
    let cylinder = PI * 0.5f64.powi(2) * (2.01 + h);
    let volume = closed_mesh.volume();
    assert!(volume > cylinder * 0.99, "{volume} vs {cylinder}");
    assert!(
        volume < cylinder + 4.0 / 3.0 * PI * 0.35f64.powi(3),
        "{volume}"
    );
}
