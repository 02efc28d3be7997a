//! How a job looks to API clients: the stored record plus where to fetch its files.

use serde::Serialize;

use crate::params::JobParams;
use crate::store::{JobRecord, JobResult, Status};

/// The job's folder holds these besides the mesh files.
pub const UPLOAD_FILE: &str = "upload";
pub const THUMBNAIL_FILE: &str = "input.png";
pub const PREPARED_FILE: &str = "prepared.png";
pub const REPORT_FILE: &str = "report.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// The final print mesh in mm (STL, 3MF, GLB) and its printability report.
    Print,
    /// The mesh as the model made it (Y up, model units).
    Raw,
    /// The job's record (parameters, timings, every candidate's numbers).
    Job,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FileLink {
    pub name: String,
    /// glb, stl, 3mf, obj, ply, or report.
    pub format: String,
    pub kind: FileKind,
    /// The candidate's seed (none for the job's record).
    pub seed: Option<u64>,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    pub status: Status,
    /// 1-based place in the queue while queued.
    pub position: Option<usize>,
    pub input_name: String,
    pub params: JobParams,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// The device running or that ran the job, e.g. `cuda:1` (none while queued).
    pub device: Option<String>,
    /// What went wrong, in words for the user, when failed.
    pub error: Option<String>,
    pub result: Option<JobResult>,
    /// Thumbnail of the uploaded photo.
    pub input_url: String,
    /// The cut-out on white that the model saw (once prepared).
    pub prepared_url: Option<String>,
    /// Every file, once done: per candidate its print files then its raw mesh files, and
    /// last the job's record.
    pub files: Vec<FileLink>,
    pub events_url: String,
}

pub fn file_url(id: &str, name: &str) -> String {
    format!("/api/jobs/{id}/files/{name}")
}

/// The old app's download address of a `/generate` job's file.
pub fn legacy_url(id: &str, format: &str) -> String {
    format!("/outputs/{id}.{format}")
}

impl JobView {
    pub fn new(job: &JobRecord, position: Option<usize>) -> Self {
        let id = &job.id;
        let mut files = Vec::new();
        if let Some(result) = &job.result {
            for c in &result.candidates {
                let print = c.print_files.iter().map(|n| (n, FileKind::Print));
                let raw = c.files.iter().map(|n| (n, FileKind::Raw));
                for (name, kind) in print.chain(raw) {
                    let format = if name.ends_with(".report.json") {
                        "report"
                    } else {
                        name.rsplit('.').next().unwrap_or_default()
                    };
                    files.push(FileLink {
                        url: file_url(id, name),
                        name: name.clone(),
                        format: format.into(),
                        kind,
                        seed: Some(c.seed),
                    });
                }
            }
            files.push(FileLink {
                name: REPORT_FILE.into(),
                format: "report".into(),
                kind: FileKind::Job,
                seed: None,
                url: file_url(id, REPORT_FILE),
            });
        }
        let prepared = job.result.is_some() || job.status == Status::Running;
        Self {
            id: id.clone(),
            status: job.status,
            position,
            input_name: job.input_name.clone(),
            params: job.params.clone(),
            created_ms: job.created_ms,
            started_ms: job.started_ms,
            finished_ms: job.finished_ms,
            device: job.device.clone(),
            error: job.error.clone(),
            result: job.result.clone(),
            input_url: file_url(id, THUMBNAIL_FILE),
            prepared_url: prepared.then(|| file_url(id, PREPARED_FILE)),
            files,
            events_url: format!("/api/jobs/{id}/events"),
        }
    }
}

/// The old app's `/generate` answer: `{glb, stl}` addresses (of the first candidate).
pub fn legacy_answer(id: &str) -> serde_json::Value {
    serde_json::json!({
        "glb": legacy_url(id, "glb"),
        "stl": legacy_url(id, "stl"),
        "job": id,
    })
}
