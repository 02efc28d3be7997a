//! `triposg generate`: photos in, print files and meshes out, with the models loaded once for
//! every image.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use clap::Args;
use serde::Serialize;
use triposg_core::{
    generate_shape, prepare_image, prepare_print_cancellable, Cancel, Event, LazyRmbg, Models,
    Placement, ShapeParams, Stage,
};
use triposg_image::{DecodeLimits, PrepOptions, PreparedImage};
use triposg_mesh::print::{self, PrintMetadata, PrintOptions, UpAxis};
use triposg_mesh::Mesh;

use triposg_server::config::parse_memory_limit;
use triposg_server::memory::query_batch;

use crate::prep::PrintArgs;
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
    /// Formats of the raw mesh as the model made it (Y up, model units, like the old app's
    /// files): any of glb, stl, obj, ply, 3mf, or `none`. The print files come on top.
    #[arg(
        long,
        env = "TRIPOSG_FORMATS",
        value_delimiter = ',',
        default_value = "glb"
    )]
    formats: Vec<String>,
    /// Skip print preparation (no `_print.stl/.3mf/.glb/.report.json`).
    #[arg(long, env = "TRIPOSG_NO_PRINT")]
    no_print: bool,
    /// Also write the run's summary (per image and seed: stage seconds, files, print figures)
    /// as JSON to this file.
    #[arg(long, env = "TRIPOSG_SUMMARY_JSON")]
    summary_json: Option<PathBuf>,
    /// The most memory the run may take on its device (RAM on the CPU, the card's on a GPU),
    /// e.g. 6GiB or 800MiB: a larger run decodes in smaller batches or stops before loading
    /// the models, saying what to lower. Default: no limit.
    #[arg(long, env = "TRIPOSG_MEMORY_LIMIT", value_parser = parse_memory_limit)]
    memory_limit: Option<u64>,
    /// Keep the models in host memory and copy each onto the GPU only for its stage: the card
    /// then holds the transformer (2.9 GB in f16) instead of all three models (4.1 GB; the small
    /// background-removal model stays), for about half a second of copying per shape.
    #[arg(long, env = "TRIPOSG_OFFLOAD")]
    offload: bool,
    #[command(flatten)]
    print: PrintArgs,
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

    fn raw_formats(&self) -> Result<Vec<&str>> {
        let formats: Vec<&str> = self
            .formats
            .iter()
            .map(|f| f.trim())
            .filter(|f| !f.is_empty() && *f != "none")
            .collect();
        for format in &formats {
            triposg_mesh::Format::from_path(Path::new(&format!("x.{format}"))).with_context(
                || format!("unknown format `{format}`: use glb, stl, obj, ply, 3mf or none"),
            )?;
        }
        Ok(formats)
    }

    /// What the 3MF and the report record about how the shape was made.
    fn generation_record(&self, seed: u64) -> serde_json::Value {
        serde_json::json!({
            "steps": self.steps,
            "guidance": self.guidance,
            "seed": seed,
            "octree_depth": self.octree_depth,
            "num_tokens": self.num_tokens,
            "max_faces": self.max_faces,
            "margin": self.margin,
        })
    }
}

/// One shape of the run, as the summary table and `--summary-json` show it.
#[derive(Serialize)]
struct Row {
    image: String,
    seed: u64,
    #[serde(flatten)]
    outcome: Outcome,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Done(Done),
    Failed(String),
}

#[derive(Serialize)]
struct Done {
    faces: usize,
    /// Whether the raw mesh is a closed 2-manifold (the print mesh always is).
    raw_closed: bool,
    /// Seconds per stage; `prepare` (decoding and framing the photo) is shared by the
    /// candidates of one image.
    stage_seconds: Vec<(String, f64)>,
    /// Photo to raw mesh files: prepare + generation + writing.
    seconds: f64,
    /// Print preparation and writing the print files.
    print_seconds: Option<f64>,
    /// Print size in mm (X, Y, Z) and volume in cm^3, when print preparation ran.
    print_size_mm: Option<[f64; 3]>,
    print_volume_cm3: Option<f64>,
    files: Vec<PathBuf>,
}

fn stage_name(stage: Stage) -> String {
    format!("{stage:?}").to_lowercase()
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

/// A framed photo and the seconds its preparation took.
struct Prepared {
    image: PreparedImage,
    seconds: f64,
}

/// Everything fixed for the whole run: the models and the options every shape shares.
struct Run<'a> {
    args: &'a GenerateArgs,
    /// Points per VAE call, within --memory-limit.
    query_batch: usize,
    models: Models,
    device: &'a Device,
    formats: Vec<&'a str>,
    print: Option<PrintOptions>,
    cancel: Cancel,
}

impl Run<'_> {
    /// One shape from one prepared photo: generate, write the raw mesh, prepare and write the
    /// print files. Every file is written to a temporary name and renamed when complete.
    fn shape(&self, name: &str, stem: &str, prepared: &Prepared, seed: u64) -> Outcome {
        let start = Instant::now();
        // Shared by the progress callback and the save of the raw mesh (its files and the
        // closedness check), which is timed like a stage.
        let stage_seconds = RefCell::new(vec![("prepare".to_string(), prepared.seconds)]);
        let mut on_event = |e: Event| {
            progress_line(name, seed, &e);
            if let Event::StageFinished { stage, elapsed } = e {
                stage_seconds
                    .borrow_mut()
                    .push((stage_name(stage), elapsed.as_secs_f64()));
            }
        };
        let result = (|| -> Result<Done> {
            let pixels = prepared.image.pixel_tensor(self.device)?;
            let mesh = generate_shape(
                &self.models,
                &pixels,
                &ShapeParams {
                    query_batch: self.query_batch,
                    ..self.args.params(seed)
                },
                &self.cancel,
                &mut on_event,
            )?;
            let write_start = Instant::now();
            let (files, raw_closed) =
                mesh.closed_manifold_beside(|| self.write_raw(stem, seed, &mesh));
            let mut files = files?;
            stage_seconds
                .borrow_mut()
                .push(("save".into(), write_start.elapsed().as_secs_f64()));
            let mut done = Done {
                faces: mesh.faces.len(),
                raw_closed,
                stage_seconds: Vec::new(),
                seconds: prepared.seconds + start.elapsed().as_secs_f64(),
                print_seconds: None,
                print_size_mm: None,
                print_volume_cm3: None,
                files: Vec::new(),
            };
            if let Some(opts) = &self.print {
                let print_start = Instant::now();
                let result = prepare_print_cancellable(&mesh, opts, &self.cancel, &mut on_event)?;
                let meta = PrintMetadata {
                    name: stem.to_string(),
                    source_image: Some(name.to_string()),
                    seed: Some(seed),
                    generation: Some(self.args.generation_record(seed)),
                };
                let written = print::write_outputs(
                    &result,
                    &self.args.out,
                    &format!("{stem}_seed{seed}_print"),
                    &meta,
                )
                .context("writing the print files")?;
                done.print_size_mm = Some(result.report.bbox_mm);
                done.print_volume_cm3 = Some(result.report.volume_cm3);
                files.extend([written.stl, written.three_mf, written.glb, written.report]);
                done.print_seconds = Some(print_start.elapsed().as_secs_f64());
            }
            done.files = files;
            Ok(done)
        })();
        eprintln!();
        match result {
            Ok(mut done) => {
                done.stage_seconds = stage_seconds.into_inner();
                Outcome::Done(done)
            }
            Err(e) => Outcome::Failed(format!("{e:#}")),
        }
    }

    fn write_raw(&self, stem: &str, seed: u64, mesh: &Mesh) -> Result<Vec<PathBuf>> {
        let paths: Vec<PathBuf> = self
            .formats
            .iter()
            .map(|format| self.args.out.join(format!("{stem}_seed{seed}.{format}")))
            .collect();
        for (written, path) in triposg_mesh::save_each(mesh, &paths)
            .into_iter()
            .zip(&paths)
        {
            written.with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(paths)
    }
}

fn print_summary(rows: &[Row]) {
    println!(
        "\n{:<32} {:>6} {:>9} {:>10} {:>20} {:>8} {:>8}  files / error",
        "image", "seed", "faces", "raw closed", "print size mm", "seconds", "print s"
    );
    for row in rows {
        match &row.outcome {
            Outcome::Done(done) => println!(
                "{:<32} {:>6} {:>9} {:>10} {:>20} {:>8.1} {:>8}  {}",
                row.image,
                row.seed,
                done.faces,
                if done.raw_closed { "yes" } else { "no" },
                done.print_size_mm
                    .map_or("-".into(), |[x, y, z]| format!("{x:.1} x {y:.1} x {z:.1}")),
                done.seconds,
                done.print_seconds.map_or("-".into(), |s| format!("{s:.1}")),
                done.files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Outcome::Failed(e) => println!("{:<32} {:>6} FAILED: {e}", row.image, row.seed),
        }
    }
}

pub fn run(weights: &Path, device: &Device, dtype: DType, args: &GenerateArgs) -> Result<bool> {
    // Every option is checked before minutes go into loading models.
    let formats = args.raw_formats()?;
    let print = if args.no_print {
        None
    } else {
        Some(args.print.options(UpAxis::Y)?)
    };
    if formats.is_empty() && print.is_none() {
        anyhow::bail!("--formats none with --no-print would write no mesh: drop one of them");
    }
    args.params(args.seed).validate()?;
    let query_batch = query_batch(
        args.memory_limit,
        weights,
        device,
        dtype,
        Placement::from_offload(args.offload),
        &args.params(args.seed),
    )
    .map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating output folder {}", args.out.display()))?;
    eprintln!(
        "loading models from {} on {device:?} ...",
        weights.display()
    );
    let models = Models::load(
        weights,
        device,
        dtype,
        Placement::from_offload(args.offload),
    )
    .context("loading the TripoSG weights (`triposg check-weights` tells what is wrong)")?;
    let rmbg = LazyRmbg::new(weights.join("RMBG-1.4"), device.clone());
    let run = Run {
        args,
        query_batch,
        models,
        device,
        formats,
        print,
        cancel: Cancel::new(),
    };
    crate::signals::cancel_on_signal(run.cancel.clone());
    let mut rows = Vec::new();
    for path in &args.images {
        if run.cancel.is_cancelled() {
            break;
        }
        let name = path.display().to_string();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let failed = |message: String| Row {
            image: name.clone(),
            seed: args.seed,
            outcome: Outcome::Failed(message),
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                rows.push(failed(format!("cannot read: {e}")));
                continue;
            }
        };
        let prep = PrepOptions {
            margin: args.margin,
        };
        let prep_start = Instant::now();
        let prepared = prepare_image(&rmbg, &bytes, &DecodeLimits::default(), &prep, |e| {
            progress_line(&name, args.seed, &e)
        })
        .map_err(|e| e.to_string())
        .and_then(|prepared| {
            let preview = args.out.join(format!("{stem}_prepared.png"));
            let mut png = std::io::Cursor::new(Vec::new());
            prepared
                .image
                .write_to(&mut png, image::ImageFormat::Png)
                .map_err(|e| e.to_string())?;
            triposg_mesh::io::write_atomically(&preview, png.get_ref())
                .map_err(|e| format!("writing {}: {e}", preview.display()))?;
            Ok(Prepared {
                image: prepared,
                seconds: prep_start.elapsed().as_secs_f64(),
            })
        });
        eprintln!();
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                rows.push(failed(e));
                continue;
            }
        };
        for seed in (args.seed..).take(args.candidates as usize) {
            if run.cancel.is_cancelled() {
                break;
            }
            rows.push(Row {
                image: name.clone(),
                seed,
                outcome: run.shape(&name, &stem, &prepared, seed),
            });
        }
    }
    print_summary(&rows);
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_vec_pretty(&rows)?;
        triposg_mesh::io::write_atomically(path, &json)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if run.cancel.is_cancelled() {
        anyhow::bail!(
            "cancelled: the shapes listed above as done were written completely, nothing else was"
        );
    }
    Ok(rows.iter().all(|r| matches!(r.outcome, Outcome::Done(_))))
}
