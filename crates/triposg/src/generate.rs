//! `triposg generate`: photos in, mesh files out, with the models loaded once for every image.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use clap::Args;
use triposg_core::{
    generate_shape, prepare_image, Cancel, Event, LazyRmbg, Models, ShapeParams, Stage,
};
use triposg_image::{DecodeLimits, PrepOptions, PreparedImage};
use triposg_mesh::Mesh;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Photos of one object each (PNG, JPEG, WebP, BMP, TIFF, GIF).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Output folder.
    #[arg(short, long, env = "TRIPOSG_OUTPUTS", default_value = "outputs")]
    out: PathBuf,
    /// Sampling steps (1..=200).
    #[arg(long, env = "TRIPOSG_STEPS", default_value_t = 50)]
    steps: usize,
    /// Classifier-free guidance scale (1 = off).
    #[arg(long, env = "TRIPOSG_GUIDANCE", default_value_t = 7.0)]
    guidance: f32,
    /// Seed of the first candidate; candidate i uses seed + i.
    #[arg(long, env = "TRIPOSG_SEED", default_value_t = 42)]
    seed: u64,
    /// Shapes to generate per image, each from its own seed.
    #[arg(long, env = "TRIPOSG_CANDIDATES", default_value_t = 1)]
    candidates: u64,
    /// Octree depth of the surface (7..=10; 9 as upstream).
    #[arg(long, env = "TRIPOSG_OCTREE_DEPTH", default_value_t = 9)]
    octree_depth: u32,
    /// Latent tokens of the shape (upstream: 2048; fewer is faster and coarser).
    #[arg(long, env = "TRIPOSG_NUM_TOKENS", default_value_t = 2048)]
    num_tokens: usize,
    /// Decimate to at most this many faces.
    #[arg(long, env = "TRIPOSG_MAX_FACES")]
    max_faces: Option<usize>,
    /// Space around the object when framing, as a fraction of its size.
    #[arg(long, env = "TRIPOSG_MARGIN", default_value_t = 0.1)]
    margin: f64,
    /// Mesh formats to write: any of glb, stl, obj, ply, 3mf.
    #[arg(
        long,
        env = "TRIPOSG_FORMATS",
        value_delimiter = ',',
        default_value = "glb,stl"
    )]
    formats: Vec<String>,
}

impl GenerateArgs {
    fn params(&self, seed: u64) -> ShapeParams {
        ShapeParams {
            steps: self.steps,
            guidance: self.guidance,
            seed,
            octree_depth: self.octree_depth,
            max_faces: self.max_faces,
            num_tokens: self.num_tokens,
            ..Default::default()
        }
    }
}

struct Row {
    image: String,
    seed: u64,
    outcome: std::result::Result<(usize, bool, f64, Vec<PathBuf>), String>,
}

fn progress_line(name: &str, seed: u64, e: &Event) {
    use std::io::Write;
    let line = match e {
        Event::StageStarted(s) => format!("{s:?}..."),
        Event::Progress {
            stage: Stage::Denoise,
            done,
            total,
        } => format!("Denoise step {done}/{total}"),
        Event::Progress { stage, done, .. } => format!("{stage:?} {done} points"),
        Event::StageFinished { stage, elapsed } => {
            format!("{stage:?} done in {:.1} s", elapsed.as_secs_f64())
        }
    };
    eprint!("\r\x1b[2K{name} seed {seed}: {line}");
    let _ = std::io::stderr().flush();
}

fn write_outputs(
    args: &GenerateArgs,
    stem: &str,
    seed: u64,
    prepared: &PreparedImage,
    mesh: &Mesh,
) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let preview = args.out.join(format!("{stem}_prepared.png"));
    prepared
        .image
        .save(&preview)
        .with_context(|| format!("writing {}", preview.display()))?;
    files.push(preview);
    for format in &args.formats {
        let path = args.out.join(format!("{stem}_seed{seed}.{format}"));
        triposg_mesh::save(mesh, &path).with_context(|| format!("writing {}", path.display()))?;
        files.push(path);
    }
    Ok(files)
}

pub fn run(weights: &Path, device: &Device, dtype: DType, args: &GenerateArgs) -> Result<bool> {
    for format in &args.formats {
        triposg_mesh::Format::from_path(Path::new(&format!("x.{format}")))
            .with_context(|| format!("unknown format `{format}`: use glb, stl, obj, ply or 3mf"))?;
    }
    args.params(args.seed).validate()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating output folder {}", args.out.display()))?;
    eprintln!("loading models from {} ...", weights.display());
    let models = Models::load(weights, device, dtype)
        .context("loading the TripoSG weights (`triposg check-weights` tells what is wrong)")?;
    let rmbg = LazyRmbg::new(weights.join("RMBG-1.4"), device.clone());
    let mut rows = Vec::new();
    for path in &args.images {
        let name = path.display().to_string();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                rows.push(Row {
                    image: name,
                    seed: args.seed,
                    outcome: Err(format!("cannot read: {e}")),
                });
                continue;
            }
        };
        let limits = DecodeLimits::default();
        let prep = PrepOptions {
            margin: args.margin,
        };
        let prepared = match prepare_image(&rmbg, &bytes, &limits, &prep, |e| {
            progress_line(&name, args.seed, &e)
        }) {
            Ok(p) => p,
            Err(e) => {
                eprintln!();
                rows.push(Row {
                    image: name,
                    seed: args.seed,
                    outcome: Err(e.to_string()),
                });
                continue;
            }
        };
        let pixels = prepared.pixel_tensor(device)?;
        for seed in (args.seed..).take(args.candidates as usize) {
            let start = Instant::now();
            let outcome =
                generate_shape(&models, &pixels, &args.params(seed), &Cancel::new(), |e| {
                    progress_line(&name, seed, &e)
                })
                .map_err(|e| e.to_string())
                .and_then(|mesh| {
                    let files = write_outputs(args, &stem, seed, &prepared, &mesh)
                        .map_err(|e| format!("{e:#}"))?;
                    let closed = mesh.topology().is_closed_manifold();
                    Ok((
                        mesh.faces.len(),
                        closed,
                        start.elapsed().as_secs_f64(),
                        files,
                    ))
                });
            eprintln!();
            rows.push(Row {
                image: name.clone(),
                seed,
                outcome,
            });
        }
    }
    println!(
        "\n{:<32} {:>6} {:>9} {:>7} {:>8}  files / error",
        "image", "seed", "faces", "closed", "seconds"
    );
    for row in &rows {
        match &row.outcome {
            Ok((faces, closed, secs, files)) => println!(
                "{:<32} {:>6} {:>9} {:>7} {:>8.1}  {}",
                row.image,
                row.seed,
                faces,
                if *closed { "yes" } else { "no" },
                secs,
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Err(e) => println!("{:<32} {:>6} FAILED: {e}", row.image, row.seed),
        }
    }
    Ok(rows.iter().all(|r| r.outcome.is_ok()))
}
