//! The persistent job store. Written against sqlx's `Any` driver with SQL that SQLite and
//! PostgreSQL both accept, so several servers can later share one PostgreSQL; SQLite in the
//! outputs folder is the embedded default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::params::JobParams;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "cancelled" => Self::Cancelled,
            _ => Self::Failed,
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

/// Which door the job came through: downloads of `/generate` jobs are served at the old app's
/// `/outputs/<id>.<ext>` URLs to whoever holds the (unguessable) id, as the old scripts expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Api,
    Generate,
}

/// What one generated shape came out as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Candidate {
    pub seed: u64,
    pub faces: usize,
    pub vertices: usize,
    /// Closed, consistently oriented surface (what a slicer needs).
    pub closed: bool,
    /// Bounding box size in model units (x, y, z).
    pub size: [f32; 3],
    /// The raw mesh's files.
    pub files: Vec<String>,
    /// The print files: STL, 3MF and GLB of one final mesh in mm, and its report.
    #[serde(default)]
    pub print_files: Vec<String>,
    #[serde(default)]
    pub print: Option<crate::print::PrintSummary>,
    /// Why print preparation failed, if it did (the raw files are there all the same).
    #[serde(default)]
    pub print_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct JobResult {
    pub candidates: Vec<Candidate>,
    /// Seconds spent in each stage, summed over candidates.
    pub stage_seconds: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub session: String,
    pub origin: Origin,
    pub status: Status,
    pub params: JobParams,
    /// The uploaded file's name as the user called it (display only; never a path).
    pub input_name: String,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub error: Option<String>,
    pub result: Option<JobResult>,
    /// Bytes the job's files take on disk.
    pub bytes: i64,
    /// The device running or that ran the job, e.g. `cuda:1` (none while queued).
    pub device: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("job store holds a damaged record: {0}")]
    Corrupt(#[from] serde_json::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
}

const COLUMNS: &str = "id, session, origin, status, params, input_name, created_ms, started_ms, \
                       finished_ms, error, result, bytes, device";

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the store at `url`: `sqlite://PATH?mode=rwc` or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .connect(url)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS jobs (
                id TEXT PRIMARY KEY,
                session TEXT NOT NULL,
                origin TEXT NOT NULL,
                status TEXT NOT NULL,
                params TEXT NOT NULL,
                input_name TEXT NOT NULL,
                created_ms BIGINT NOT NULL,
                started_ms BIGINT,
                finished_ms BIGINT,
                error TEXT,
                result TEXT,
                bytes BIGINT NOT NULL DEFAULT 0
            )",
        )
        .execute(&pool)
        .await?;
        sqlx::query("CREATE INDEX IF NOT EXISTS jobs_session ON jobs (session, created_ms)")
            .execute(&pool)
            .await?;
        // Added after the first release: stores made before them get the columns here.
        for (column, kind) in [
            ("interruptions", "BIGINT NOT NULL DEFAULT 0"),
            ("device", "TEXT"),
        ] {
            if sqlx::query(&format!("SELECT {column} FROM jobs LIMIT 1"))
                .fetch_optional(&pool)
                .await
                .is_err()
            {
                sqlx::query(&format!("ALTER TABLE jobs ADD COLUMN {column} {kind}"))
                    .execute(&pool)
                    .await?;
            }
        }
        Ok(Self { pool })
    }

    /// SQLite's own consistency check of the whole file ("ok" when sound); `None` on a server
    /// database, which checks itself.
    pub async fn integrity_check(&self) -> Result<Option<String>> {
        if self.pool.connect_options().database_url.scheme() != "sqlite" {
            return Ok(None);
        }
        let rows = sqlx::query("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await?;
        let lines = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Some(lines.join("; ")))
    }

    /// Counts one more time the server died while the job ran; returns the new count.
    pub async fn count_interruption(&self, id: &str) -> Result<i64> {
        sqlx::query("UPDATE jobs SET interruptions = interruptions + 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT interruptions FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("interruptions")?)
    }

    /// Every job id, for matching the outputs folder against the records.
    pub async fn ids(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM jobs")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get("id").map_err(StoreError::from))
            .collect()
    }

    pub async fn insert(&self, job: &JobRecord) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO jobs ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&job.id)
        .bind(&job.session)
        .bind(serde_json::to_string(&job.origin)?)
        .bind(job.status.as_str())
        .bind(serde_json::to_string(&job.params)?)
        .bind(&job.input_name)
        .bind(job.created_ms)
        .bind(job.started_ms)
        .bind(job.finished_ms)
        .bind(job.error.clone())
        .bind(job.result.as_ref().map(serde_json::to_string).transpose()?)
        .bind(job.bytes)
        .bind(job.device.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode(&r)).transpose()
    }

    /// Newest first; `session: None` lists everyone's.
    pub async fn list(&self, session: Option<&str>, limit: i64) -> Result<Vec<JobRecord>> {
        let rows = match session {
            Some(s) => {
                sqlx::query(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE session = $1 ORDER BY created_ms DESC LIMIT $2"
            ))
                .bind(s)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM jobs ORDER BY created_ms DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(decode).collect()
    }

    /// Jobs not finished when the server last stopped, oldest first.
    pub async fn unfinished(&self) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_ms"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Finished jobs, newest first (retention walks them).
    pub async fn finished(&self) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE status IN ('done', 'failed', 'cancelled') \
             ORDER BY created_ms DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Back in the queue (after a restart or a transient failure).
    pub async fn requeue(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET status = $1, started_ms = NULL, device = NULL WHERE id = $2")
            .bind(Status::Queued.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Running since `started_ms` on `device`.
    pub async fn start(&self, id: &str, started_ms: i64, device: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET status = $1, started_ms = $2, device = $3 WHERE id = $4")
            .bind(Status::Running.as_str())
            .bind(started_ms)
            .bind(device)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn finish(
        &self,
        id: &str,
        status: Status,
        error: Option<String>,
        result: Option<&JobResult>,
        bytes: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET status = $1, finished_ms = $2, error = $3, result = $4, bytes = $5 \
             WHERE id = $6",
        )
        .bind(status.as_str())
        .bind(now_ms())
        .bind(error)
        .bind(result.map(serde_json::to_string).transpose()?)
        .bind(bytes)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn decode(row: &AnyRow) -> Result<JobRecord> {
    let result: Option<String> = row.try_get("result")?;
    Ok(JobRecord {
        id: row.try_get("id")?,
        session: row.try_get("session")?,
        origin: serde_json::from_str(&row.try_get::<String, _>("origin")?)?,
        status: Status::parse(&row.try_get::<String, _>("status")?),
        params: serde_json::from_str(&row.try_get::<String, _>("params")?)?,
        input_name: row.try_get("input_name")?,
        created_ms: row.try_get("created_ms")?,
        started_ms: row.try_get("started_ms")?,
        finished_ms: row.try_get("finished_ms")?,
        error: row.try_get("error")?,
        result: result.as_deref().map(serde_json::from_str).transpose()?,
        bytes: row.try_get("bytes")?,
        device: row.try_get("device")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written by the first release (no `interruptions`, no `device`) opens with its
    /// jobs intact and gains both columns.
    #[tokio::test]
    async fn a_first_release_store_gains_the_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
        sqlx::any::install_default_drivers();
        let old = AnyPool::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, session TEXT NOT NULL, origin TEXT NOT NULL,
                status TEXT NOT NULL, params TEXT NOT NULL, input_name TEXT NOT NULL,
                created_ms BIGINT NOT NULL, started_ms BIGINT, finished_ms BIGINT, error TEXT,
                result TEXT, bytes BIGINT NOT NULL DEFAULT 0)",
        )
        .execute(&old)
        .await
        .unwrap();
        let params = serde_json::to_string(&JobParams::default()).unwrap();
        sqlx::query(
            "INSERT INTO jobs (id, session, origin, status, params, input_name, created_ms)
             VALUES ('a', 's', '\"api\"', 'queued', $1, 'cat.png', 1)",
        )
        .bind(params)
        .execute(&old)
        .await
        .unwrap();
        old.close().await;

        let store = Store::connect(&url).await.unwrap();
        let job = store.get("a").await.unwrap().unwrap();
        assert_eq!((job.status, job.device), (Status::Queued, None));
        store.start("a", 5, "cuda:1").await.unwrap();
        let job = store.get("a").await.unwrap().unwrap();
        assert_eq!(job.status, Status::Running);
        assert_eq!(
            (job.started_ms, job.device.as_deref()),
            (Some(5), Some("cuda:1"))
        );
        assert_eq!(store.count_interruption("a").await.unwrap(), 1);
        store.requeue("a").await.unwrap();
        let job = store.get("a").await.unwrap().unwrap();
        assert_eq!(
            (job.status, job.started_ms, job.device),
            (Status::Queued, None, None)
        );
    }
}
