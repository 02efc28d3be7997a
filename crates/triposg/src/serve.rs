//! `triposg serve`: the web app (UI, API, queue) on port 5000 like the old app.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::signals::stop_signal;
use anyhow::Result;
use clap::Args;
use triposg_core::residency::ResidencyPolicy;
use triposg_core::Placement;
use triposg_server::config::{parse_devices, parse_memory_limit, Config, Retention};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; 0.0.0.0 for every interface (set --auth-token then).
    #[arg(long, env = "TRIPOSG_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one and prints it).
    #[arg(long, env = "TRIPOSG_PORT", default_value_t = 5000)]
    port: u16,
    /// Folder for job files and the job store (triposg.db).
    #[arg(long, env = "TRIPOSG_OUTPUTS", default_value = "outputs")]
    outputs: PathBuf,
    /// Devices, one worker each on one queue: cuda:0,cuda:1 (or just 0,1), cpu, metal, or auto
    /// (the first CUDA card, else Metal, else the CPU: a fresh install starts anywhere).
    #[arg(long, env = "TRIPOSG_DEVICES", default_value = "auto")]
    devices: String,
    /// f32, f16 or bf16; default f16 on GPUs, f32 on CPU.
    #[arg(long, env = "TRIPOSG_DTYPE")]
    dtype: Option<String>,
    /// When models leave memory: keep, idle:MINUTES (after that long without jobs) or unload
    /// (after every job, the old app's behaviour, for GPUs shared with other programs).
    #[arg(long, env = "TRIPOSG_RESIDENCY", default_value = "idle:10")]
    residency: ResidencyPolicy,
    /// Keep loaded models in host memory and copy each onto the GPU only for its stage: the
    /// card then holds the transformer (2.9 GB in f16) instead of all three models (4.1 GB; the
    /// small background-removal model stays), for about half a second of copying per shape.
    #[arg(long, env = "TRIPOSG_OFFLOAD")]
    offload: bool,
    /// Jobs allowed to wait; more submissions get "429 Too Many Requests" with Retry-After.
    #[arg(long, env = "TRIPOSG_QUEUE_LIMIT", default_value_t = 20)]
    queue_limit: usize,
    /// Require this token (Authorization: Bearer, or open the page once with ?token=...).
    #[arg(long, env = "TRIPOSG_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// Every visitor sees every job (otherwise jobs belong to the browser that made them).
    #[arg(long, env = "TRIPOSG_SHARED_HISTORY")]
    shared_history: bool,
    /// Largest accepted upload, in MiB.
    #[arg(long, env = "TRIPOSG_MAX_UPLOAD_MB", default_value_t = 20)]
    max_upload_mb: usize,
    /// Largest accepted image side, in pixels.
    #[arg(long, env = "TRIPOSG_MAX_IMAGE_SIDE", default_value_t = 16_384)]
    max_image_side: u32,
    /// Delete finished jobs older than this many days.
    #[arg(long, env = "TRIPOSG_KEEP_DAYS")]
    keep_days: Option<f64>,
    /// Keep at most this many finished jobs (oldest go first).
    #[arg(long, env = "TRIPOSG_KEEP_JOBS")]
    keep_jobs: Option<u64>,
    /// Keep finished jobs' files under this many MiB (oldest go first).
    #[arg(long, env = "TRIPOSG_KEEP_MB")]
    keep_mb: Option<u64>,
    /// The most memory one job may take on its device (RAM on the CPU, the card's on a GPU),
    /// e.g. 6GiB or 800MiB: a larger job runs with a smaller decode batch or fails saying what
    /// to lower, instead of running out of memory. Default: no limit.
    #[arg(long, env = "TRIPOSG_MEMORY_LIMIT", value_parser = parse_memory_limit)]
    memory_limit: Option<u64>,
    /// Job store: sqlite://PATH or postgres://...; default sqlite in the outputs folder.
    #[arg(long, env = "TRIPOSG_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl ServeArgs {
    fn config(&self, weights: &Path) -> Result<Config> {
        let mut c = Config::new(weights.to_path_buf(), self.outputs.clone());
        c.host = self.host.clone();
        c.port = self.port;
        c.devices = parse_devices(&self.devices).map_err(anyhow::Error::msg)?;
        c.dtype = self.dtype.clone();
        c.residency = self.residency;
        c.placement = Placement::from_offload(self.offload);
        c.queue_limit = self.queue_limit;
        c.auth_token = self.auth_token.clone().filter(|t| !t.is_empty());
        c.shared_history = self.shared_history;
        c.max_upload_bytes = self.max_upload_mb << 20;
        c.max_image_side = self.max_image_side;
        c.retention = Retention {
            max_age: self
                .keep_days
                .map(|d| Duration::from_secs_f64(d.max(0.0) * 86_400.0)),
            max_jobs: self.keep_jobs,
            max_bytes: self.keep_mb.map(|mb| mb << 20),
        };
        c.database_url = self.database_url.clone();
        c.memory_limit = self.memory_limit;
        Ok(c)
    }
}

pub fn run(weights: &Path, args: &ServeArgs) -> Result<bool> {
    let config = args.config(weights)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(async {
        let server = triposg_server::start(config).await?;
        // One write for the whole line: scripts wait for it, and `eprintln!` writes the
        // address piece by piece, so a reader could see "http://127" and go there.
        let ready = format!("triposg serving on http://{}\n", server.addr);
        let _ = std::io::stderr().write_all(ready.as_bytes());
        stop_signal().await;
        eprintln!("stopping: running jobs are cancelled and run again after a restart");
        server.shutdown().await?;
        Ok(true)
    });
    // Dropping the runtime would wait for every blocking task, and a weights download from
    // the page is one that can take an hour: it is left where it got to (the next download
    // resumes it) after a short grace for anything else still finishing.
    runtime.shutdown_timeout(Duration::from_secs(5));
    outcome
}
