//! `triposg`: the command-line entry point. Every flag can also be set through an environment
//! variable (shown in `--help`), as the server and container deployments expect.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use triposg_model::device::{default_dtype, parse_dtype, select_device};

mod bench;
mod generate;
mod healthcheck;
mod prep;
mod serve;
mod signals;
mod weights;

#[derive(Parser)]
#[command(version, about = "Turn a photo into a 3D-printable model")]
struct Cli {
    /// Folder holding `TripoSG/` and `RMBG-1.4/` (the Python app's `pretrained_weights`).
    #[arg(
        long,
        env = "TRIPOSG_WEIGHTS",
        default_value = "pretrained_weights",
        global = true
    )]
    weights: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the weights folder against what the models need, without loading it.
    CheckWeights,
    /// Fetch VAST-AI/TripoSG and briaai/RMBG-1.4 from the Hugging Face hub into the weights
    /// folder (resumable, sizes and sha256 checked, commit pinned in a lock file). Honours
    /// HF_TOKEN, HF_ENDPOINT and HF_HUB_OFFLINE.
    Download {
        /// Resolve the newest commit instead of the one pinned by an earlier download.
        #[arg(long)]
        update: bool,
        /// Skip BriaRMBG-1.4 (non-commercial licence; only photos without a transparent
        /// background need it).
        #[arg(long, env = "TRIPOSG_SKIP_RMBG")]
        skip_rmbg: bool,
    },
    /// Turn photos into print files (STL, 3MF, GLB in mm with a report) and raw meshes.
    Generate {
        #[command(flatten)]
        args: generate::GenerateArgs,
        /// auto (first CUDA card, else Metal, else CPU), cpu, cuda, cuda:N or metal.
        #[arg(long, env = "TRIPOSG_DEVICE", default_value = "auto")]
        device: String,
        /// f32, f16 or bf16; default f16 on GPUs, f32 on CPU.
        #[arg(long, env = "TRIPOSG_DTYPE")]
        dtype: Option<String>,
    },
    /// Turn any mesh (STL, OBJ, GLB, PLY, 3MF) into print files: a closed solid in mm, Z up,
    /// on the bed, as STL + 3MF + GLB, with a printability report.
    Prep(prep::PrepArgs),
    /// Run the web app (UI, API, job queue) on http://127.0.0.1:5000 by default.
    Serve(serve::ServeArgs),
    /// Exit 0 if the server's health check answers (for container health checks; no curl needed).
    Healthcheck {
        /// The address to ask (/healthz: alive; /readyz: weights present and workers up).
        #[arg(
            long,
            env = "TRIPOSG_HEALTHCHECK_URL",
            default_value = "http://127.0.0.1:5000/healthz"
        )]
        url: String,
    },
    /// Time each model stage on given inputs and save its outputs (see tools/gpu/compare.py).
    Bench {
        /// Safetensors file of inputs written by tools/gpu/compare.py.
        #[arg(long)]
        inputs: PathBuf,
        /// Where to write the stage outputs (safetensors, f32).
        #[arg(long)]
        out: PathBuf,
        /// Stages to run (dino, dit, denoise, vae); a subset keeps a profile focused.
        #[arg(long, value_delimiter = ',', default_value = "dino,dit,denoise,vae")]
        stages: Vec<String>,
        /// Run each stage once more inside a CUDA profiler range (for `ncu --profile-from-start off`).
        #[arg(long)]
        profile: bool,
        /// cpu, cuda, cuda:N or metal.
        #[arg(long, env = "TRIPOSG_DEVICE", default_value = "cuda")]
        device: String,
        /// f32, f16 or bf16; default f16 on GPUs, f32 on CPU.
        #[arg(long, env = "TRIPOSG_DTYPE")]
        dtype: Option<String>,
    },
}

fn bench_command(
    weights: &std::path::Path,
    inputs: &std::path::Path,
    out: &std::path::Path,
    device: &str,
    dtype: Option<&str>,
    stages: &[String],
    profile: bool,
) -> anyhow::Result<bool> {
    let (device, dtype) = device_and_dtype(device, dtype)?;
    bench::run(weights, inputs, out, &device, dtype, stages, profile)?;
    Ok(true)
}

fn device_and_dtype(
    device: &str,
    dtype: Option<&str>,
) -> anyhow::Result<(candle_core::Device, candle_core::DType)> {
    let device = select_device(device)?;
    let dtype = match dtype {
        Some(name) => parse_dtype(name)?,
        None => default_dtype(&device),
    };
    Ok((device, dtype))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server logs its requests and jobs; the one-shot commands print their own progress and
    // log only problems, unless RUST_LOG asks for more (`RUST_LOG=debug` shows, for example,
    // how a decode's time was spent).
    let default_log = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_log.into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal, plain text for log files and journals.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::CheckWeights => weights::check(&cli.weights),
        Command::Download { update, skip_rmbg } => {
            weights::download(&cli.weights, update, skip_rmbg)
        }
        Command::Generate {
            args,
            device,
            dtype,
        } => device_and_dtype(&device, dtype.as_deref())
            .and_then(|(device, dtype)| generate::run(&cli.weights, &device, dtype, &args)),
        Command::Prep(args) => prep::run(&args),
        Command::Serve(args) => serve::run(&cli.weights, &args),
        Command::Healthcheck { url } => healthcheck::run(&url),
        Command::Bench {
            inputs,
            out,
            stages,
            profile,
            device,
            dtype,
        } => bench_command(
            &cli.weights,
            &inputs,
            &out,
            &device,
            dtype.as_deref(),
            &stages,
            profile,
        ),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
