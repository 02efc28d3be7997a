//! CPU benchmark of surface extraction for an analytic sphere at octree depth 9 (the app's
//! default, final grid 504^3), the numbers of docs/bench.md:
//!
//!     cargo run --release -p triposg-mesh --example bench_sphere [-- REPEATS]
//!
//! The SDF is analytic and nearly free, so the times are the octree driver's and the
//! extractor's own cost, the part that does not depend on the VAE.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use triposg_mesh::octree::{refine, OctreeOptions, VertexFrame};
use triposg_mesh::{extract_sparse, Mesh};

/// Same steepness as the analytic octree tests: the |logit| < 0.95 band is about one coarse
/// voxel, as with the real decoder's logits.
const LOGIT_SCALE: f32 = 30.0;
const RADIUS: f32 = 0.5;

fn sphere(points: &[[f32; 3]]) -> Result<Vec<f32>, Infallible> {
    Ok(points
        .iter()
        .map(|p| LOGIT_SCALE * (RADIUS - (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt()))
        .collect())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let repeats: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("REPEATS must be a number"))
        .unwrap_or(5);
    let options = OctreeOptions {
        depth: 9,
        frame: VertexFrame::Sampled,
        ..OctreeOptions::default()
    };
    let (mut refine_times, mut extract_times, mut cleanup_times) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut result = None;
    for _ in 0..repeats {
        let start = Instant::now();
        let refinement = refine(&options, sphere).unwrap();
        let refined = Instant::now();
        let mut mesh = extract_sparse(&refinement.samples, &refinement.level.geometry());
        let extracted = Instant::now();
        // As a job's surface stage does after extraction.
        mesh.cleanup(triposg_mesh::DEFAULT_MIN_COMPONENT_FRACTION);
        refine_times.push(refined - start);
        extract_times.push(extracted - refined);
        cleanup_times.push(extracted.elapsed());
        result = Some((refinement, mesh));
    }
    let (refinement, mesh): (_, Mesh) = result.expect("at least one repeat");
    let queries: Vec<_> = refinement
        .stats
        .iter()
        .map(|s| format!("{}: {}", s.resolution, s.queries))
        .collect();
    let t = mesh.topology();
    let analytic = 4.0 / 3.0 * std::f64::consts::PI * (RADIUS as f64).powi(3);
    println!("sphere r={RADIUS}, depth 9, median of {repeats}");
    println!("queries per level  {}", queries.join(", "));
    println!(
        "mesh               {} vertices, {} faces, closed manifold {}, volume error {:+.2e}",
        mesh.vertices.len(),
        mesh.faces.len(),
        t.is_closed_manifold(),
        mesh.volume() / analytic - 1.0
    );
    let (r, e, c) = (
        median(refine_times),
        median(extract_times),
        median(cleanup_times),
    );
    println!("refine             {:.1} ms", r.as_secs_f64() * 1e3);
    println!("extract            {:.1} ms", e.as_secs_f64() * 1e3);
    println!("cleanup            {:.1} ms", c.as_secs_f64() * 1e3);
    println!(
        "total              {:.1} ms",
        (r + e + c).as_secs_f64() * 1e3
    );
}
