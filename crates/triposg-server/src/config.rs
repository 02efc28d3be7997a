//! What the server is told at start-up (the CLI fills it from flags and environment variables).

use std::path::PathBuf;
use std::time::Duration;

use triposg_core::residency::ResidencyPolicy;
use triposg_core::Placement;

#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    /// 0 picks a free port (tests); the bound address is logged and returned.
    pub port: u16,
    /// Folder holding `TripoSG/` and `RMBG-1.4/`.
    pub weights: PathBuf,
    /// Job files and, unless `database_url` says otherwise, the SQLite job store.
    pub outputs: PathBuf,
    /// `cpu`, `cuda:N`, `metal`: one worker each, all taking jobs from one queue.
    pub devices: Vec<String>,
    /// f32, f16 or bf16; `None` picks per device (f16 on GPUs, f32 on CPU).
    pub dtype: Option<String>,
    pub residency: ResidencyPolicy,
    /// Where loaded models wait between a job's stages: on the device, or offloaded to host
    /// memory so the device holds one model at a time.
    pub placement: Placement,
    /// Jobs that may wait (not counting running ones) before submissions get 429.
    pub queue_limit: usize,
    /// When set, every request but the health checks must present it.
    pub auth_token: Option<String>,
    /// Every visitor sees every job (a private server); otherwise jobs belong to the browser
    /// session that made them.
    pub shared_history: bool,
    pub max_upload_bytes: usize,
    /// Largest image side accepted, in pixels.
    pub max_image_side: u32,
    pub retention: Retention,
    /// `sqlite://...` or `postgres://...`; default: `triposg.db` in the outputs folder.
    pub database_url: Option<String>,
    /// The most memory one job may take on its device, in bytes; a job estimated to need more
    /// runs with a smaller decode batch or fails saying what to lower. `None`: no limit.
    pub memory_limit: Option<u64>,
    /// Hugging Face hub (or mirror) for the weights download; default `HF_ENDPOINT` or the hub.
    pub hub_endpoint: Option<String>,
}

/// Finished jobs are deleted, oldest first, once any limit is passed. `None` is no limit.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    pub max_age: Option<Duration>,
    pub max_jobs: Option<u64>,
    pub max_bytes: Option<u64>,
}

impl Config {
    /// Defaults of the flags, for the given weights and outputs folders.
    pub fn new(weights: PathBuf, outputs: PathBuf) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 5000,
            weights,
            outputs,
            devices: vec!["cuda:0".into()],
            dtype: None,
            residency: ResidencyPolicy::default(),
            placement: Placement::Device,
            queue_limit: 20,
            auth_token: None,
            shared_history: false,
            max_upload_bytes: 20 << 20,
            max_image_side: 16_384,
            retention: Retention::default(),
            database_url: None,
            hub_endpoint: None,
            memory_limit: None,
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.outputs.join("triposg.db").display()
            )
        })
    }
}

/// `--memory-limit`: `6GiB`, `800MiB`, `1.5GB` or plain bytes.
pub fn parse_memory_limit(text: &str) -> Result<u64, String> {
    let bytes = text.trim().parse::<bytesize::ByteSize>()?.as_u64();
    if bytes == 0 {
        return Err("the memory limit must be more than 0 (leave it unset for no limit)".into());
    }
    Ok(bytes)
}

/// `cuda:0,cuda:1`, `0,1` (meaning CUDA cards), `cpu` or `metal` -> candle device names.
pub fn parse_devices(list: &str) -> Result<Vec<String>, String> {
    let devices: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            if d.chars().all(|c| c.is_ascii_digit()) {
                format!("cuda:{d}")
            } else {
                d.to_string()
            }
        })
        .collect();
    if devices.is_empty() {
        return Err("no device given: use e.g. cuda:0,cuda:1, 0,1 or cpu".into());
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists_accept_bare_card_numbers() {
        assert_eq!(parse_devices("0, 1").unwrap(), ["cuda:0", "cuda:1"]);
        assert_eq!(parse_devices("cpu").unwrap(), ["cpu"]);
        assert_eq!(parse_devices("cuda:1,metal").unwrap(), ["cuda:1", "metal"]);
        assert!(parse_devices(" , ").is_err());
    }

    #[test]
    fn memory_limits_read_binary_and_decimal_units() {
        assert_eq!(parse_memory_limit("6GiB"), Ok(6 << 30));
        assert_eq!(parse_memory_limit("800 MiB"), Ok(800 << 20));
        assert_eq!(parse_memory_limit("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_memory_limit("1048576"), Ok(1 << 20));
        assert!(parse_memory_limit("lots").is_err());
        assert!(parse_memory_limit("0").is_err());
    }
}
