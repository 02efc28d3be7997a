//! `triposg download` and `triposg check-weights`: the weights library, printed for a terminal.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Result;
use triposg_weights::{human_bytes, Options, Progress};

fn print(event: &Progress, terminal: bool) {
    match event {
        Progress::Repo { repo, commit, .. } => println!("{repo} at commit {commit}"),
        Progress::Present { file, hashed, .. } => {
            println!(
                "  ok{} {file}",
                if *hashed { " (hashed)" } else { "         " }
            )
        }
        Progress::Replacing { file } => println!("  replacing   {file} (differs from the hub's)"),
        Progress::Started { file, bytes } => println!(
            "  downloading {file}{}",
            bytes.map_or(String::new(), |s| format!(" ({})", human_bytes(s)))
        ),
        // A live percentage only where it overwrites itself; logs get the start and end lines.
        Progress::Bytes { file, done, total } if terminal && *total > 0 => {
            eprint!("\r  {:>3}%  {file}", done * 100 / total);
            let _ = std::io::stderr().flush();
        }
        Progress::Bytes { .. } => {}
        Progress::Finished {
            file,
            bytes,
            seconds,
        } => {
            if terminal {
                eprint!("\r");
            }
            println!(
                "  done        {file} in {seconds:.1} s ({}/s)",
                human_bytes((*bytes as f64 / seconds.max(1e-3)) as u64)
            )
        }
        Progress::Offline { message } => println!("{message}"),
    }
}

pub fn download(weights: &Path, update: bool, skip_rmbg: bool) -> Result<bool> {
    let opts = Options {
        update,
        skip_rmbg,
        endpoint: None,
    };
    let terminal = std::io::stderr().is_terminal();
    triposg_weights::download(weights, &opts, &mut |e| print(&e, terminal))?;
    println!("weights ready in {}", weights.display());
    Ok(true)
}

pub fn check(weights: &Path) -> Result<bool> {
    let statuses = triposg_weights::check(weights);
    for s in &statuses {
        let folder = s.component.folder();
        match &s.check {
            Ok(check) if check.problems.is_empty() => println!(
                "ok      {folder:<22} {} tensors, {:.1}M parameters",
                check.tensors,
                check.parameters as f64 / 1e6
            ),
            Ok(check) => {
                println!("BROKEN  {folder:<22} {}", s.path.display());
                for p in check.problems.iter().take(20) {
                    println!("        - {p}");
                }
                if check.problems.len() > 20 {
                    println!("        ... and {} more", check.problems.len() - 20);
                }
            }
            Err(e) => println!("BROKEN  {folder:<22} {e}"),
        }
    }
    let ok = statuses.iter().all(|s| s.is_ok());
    if !ok {
        println!(
            "\nFix: run `triposg download` (resumes partial downloads), or copy the VAST-AI/TripoSG folder from the Hugging Face hub to {}",
            weights.join("TripoSG").display()
        );
    }
    Ok(ok)
}
