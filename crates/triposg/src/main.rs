//! `triposg`: the command-line entry point. Every flag can also be set through an environment
//! variable (shown in `--help`), as the server and container deployments expect.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use triposg_model::checkpoint::{Checkpoint, Component};

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
}

fn check_weights(weights: &std::path::Path) -> anyhow::Result<bool> {
    let ckpt = Checkpoint::new(weights.join("TripoSG"));
    let mut ok = true;
    for c in Component::ALL {
        let path = ckpt.weights_path(c);
        match ckpt.verify(c) {
            Ok(check) if check.problems.is_empty() => println!(
                "ok      {:<22} {} tensors, {:.1}M parameters",
                c.folder(),
                check.tensors,
                check.parameters as f64 / 1e6
            ),
            Ok(check) => {
                ok = false;
                println!("BROKEN  {:<22} {}", c.folder(), path.display());
                for p in check.problems.iter().take(20) {
                    println!("        - {p}");
                }
                if check.problems.len() > 20 {
                    println!("        ... and {} more", check.problems.len() - 20);
                }
            }
            Err(e) => {
                ok = false;
                println!("BROKEN  {:<22} {e}", c.folder());
            }
        }
    }
    if !ok {
        println!("\nFix: run `triposg download` (resumes partial downloads), or copy the VAST-AI/TripoSG folder from the Hugging Face hub to {}", ckpt.root().display());
    }
    Ok(ok)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckWeights => check_weights(&cli.weights),
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
