//! Deleting jobs: on request, and finished ones past the retention limits.

use crate::store::{now_ms, Result};
use crate::worker::job_dir;
use crate::AppState;

/// Removes a job's record and its files. A running job is cancelled first; its worker notices
/// the missing record and removes whatever it wrote after this.
pub async fn remove_job(state: &AppState, id: &str) -> Result<()> {
    state.hub.unqueue(id);
    if let Some(live) = state.hub.live(id) {
        live.cancel.cancel();
    }
    state.store.delete(id).await?;
    let dir = job_dir(&state.config.outputs, id);
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", dir.display());
        }
    }
    Ok(())
}

/// Deletes finished jobs, oldest first, beyond the age, count and disk limits; returns how many.
pub async fn apply(state: &AppState) -> Result<usize> {
    let r = &state.config.retention;
    if r.max_age.is_none() && r.max_jobs.is_none() && r.max_bytes.is_none() {
        return Ok(0);
    }
    let now = now_ms();
    let (mut kept, mut bytes, mut removed) = (0u64, 0u64, 0);
    for job in state.store.finished().await? {
        let size = job.bytes.max(0) as u64;
        let too_old = r
            .max_age
            .is_some_and(|age| now - job.created_ms > age.as_millis() as i64);
        let too_many = r.max_jobs.is_some_and(|max| kept >= max);
        let too_big = r.max_bytes.is_some_and(|max| bytes + size > max);
        if too_old || too_many || too_big {
            remove_job(state, &job.id).await?;
            removed += 1;
        } else {
            kept += 1;
            bytes += size;
        }
    }
    if removed > 0 {
        tracing::info!("retention removed {removed} finished jobs");
    }
    Ok(removed)
}
