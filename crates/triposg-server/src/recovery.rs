//! Start-up after any stop, graceful or not: check the store, clear what an interrupted write or
//! submission left behind, and queue the unfinished jobs again.

use std::path::Path;

use anyhow::Context;

use crate::hub::Hub;
use crate::store::{Status, Store};

/// A job that was running when the server died runs again, but not forever: if it is what
/// kills the server (out of memory, say), the second death fails it.
pub const MAX_INTERRUPTIONS: i64 = 2;

/// Prefix of the temporary files that atomic writes rename into place (tempfile's default).
const TEMP_PREFIX: &str = ".tmp";

pub async fn recover(store: &Store, hub: &Hub, outputs: &Path) -> anyhow::Result<()> {
    let check = store.integrity_check().await?;
    if let Some(report) = &check {
        anyhow::ensure!(
            report == "ok",
            "the job store in {} is damaged ({report}): restore triposg.db from a backup, or move it away to start with an empty history",
            outputs.display()
        );
    }
    // Only an embedded store is known to own every folder under outputs/jobs; with a shared
    // database another server may be between writing an upload and recording it.
    let embedded = check.is_some();
    remove_leftovers(store, &outputs.join("jobs"), embedded).await?;
    for job in store.unfinished().await? {
        if job.status == Status::Running {
            let times = store.count_interruption(&job.id).await?;
            if times >= MAX_INTERRUPTIONS {
                tracing::warn!("job {} interrupted {times} times: failing it", job.id);
                store
                    .finish(
                        &job.id,
                        Status::Failed,
                        Some(format!("the server stopped unexpectedly {times} times while this job ran; submit it again with fewer steps, fewer tokens or a lower octree depth (it may need more memory than the server has)")),
                        None,
                        0,
                    )
                    .await?;
                continue;
            }
            tracing::warn!(
                "job {} was running when the server stopped unexpectedly: queued again",
                job.id
            );
            store.requeue(&job.id).await?;
        }
        hub.resume(&job.id);
    }
    Ok(())
}

/// Removes half-written temporary files, and with `orphans` the folders of jobs that have no
/// record (a submission or deletion cut short).
async fn remove_leftovers(store: &Store, jobs: &Path, orphans: bool) -> anyhow::Result<()> {
    let known: std::collections::HashSet<String> = store.ids().await?.into_iter().collect();
    let entries = std::fs::read_dir(jobs).with_context(|| format!("reading {}", jobs.display()))?;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let result = if !known.contains(&name) {
            if !orphans {
                continue;
            }
            tracing::warn!("removing {}: no job of that id", path.display());
            std::fs::remove_dir_all(&path)
        } else {
            remove_temp_files(&path)
        };
        result.with_context(|| format!("cleaning up {}", path.display()))?;
    }
    Ok(())
}

fn remove_temp_files(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            tracing::warn!("removing the half-written {}", entry.path().display());
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
