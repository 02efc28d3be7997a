//! CPU benchmark of print preparation (what `triposg prep MESH --size height:40` does before
//! writing files), the numbers of docs/bench.md:
//!
//!     cargo run --release -p triposg-mesh --example bench_print -- MESH... [--repeats N]
//!
//! Prints, per mesh, the median wall time and the process CPU time of that run (Linux: the
//! build machines are shared, so CPU time is the steadier measure of the work), and the
//! prepared solid's size so that runs of different versions can be compared.

use std::path::Path;
use std::time::{Duration, Instant};

use triposg_mesh::print::{prepare_for_print, PrintOptions, SizeSpec};

/// User + system CPU seconds of this process so far, where /proc tells.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Linux reports in USER_HZ, 100 on every platform it runs on.
    Some(ticks / 100.0)
}

fn main() {
    let mut paths = Vec::new();
    let mut repeats = 3;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--repeats" {
            repeats = args
                .next()
                .and_then(|n| n.parse().ok())
                .expect("--repeats N");
        } else {
            paths.push(arg);
        }
    }
    assert!(
        !paths.is_empty(),
        "usage: bench_print MESH... [--repeats N]"
    );
    let opts = PrintOptions {
        size: SizeSpec::Height(40.0),
        ..PrintOptions::default()
    };
    for path in paths {
        let mesh = triposg_mesh::load(Path::new(&path)).expect("a mesh file");
        let mut runs: Vec<(Duration, Option<f64>)> = Vec::new();
        let mut faces = 0;
        for _ in 0..repeats {
            let (start, cpu) = (Instant::now(), cpu_seconds());
            let result = prepare_for_print(&mesh, &opts).expect("a printable solid");
            let cpu = cpu.zip(cpu_seconds()).map(|(a, b)| b - a);
            runs.push((start.elapsed(), cpu));
            faces = result.mesh.faces.len();
        }
        runs.sort_by_key(|r| r.0);
        let (wall, cpu) = runs[runs.len() / 2];
        let cpu = cpu.map_or("?".into(), |c| format!("{c:.2} s"));
        println!(
            "{path}: {} faces in, {faces} out; median of {repeats}: wall {:.2} s, CPU {cpu}",
            mesh.faces.len(),
            wall.as_secs_f64()
        );
    }
}
