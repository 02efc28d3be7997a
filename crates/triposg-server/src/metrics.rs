//! Prometheus metrics: queue depth, jobs by outcome, stage durations, models resident, GPU
//! memory.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceLabel {
    pub device: String,
}

fn seconds_histogram() -> Histogram {
    // 10 ms to ~45 min: a tiny CPU stage to a full job on a slow card.
    Histogram::new(exponential_buckets(0.01, 2.0, 18))
}

pub struct Metrics {
    registry: Registry,
    pub queue_depth: Gauge,
    pub running: Gauge,
    pub jobs: Family<OutcomeLabel, Counter>,
    pub stage_seconds: Family<StageLabel, Histogram, fn() -> Histogram>,
    pub job_seconds: Histogram,
    pub models_loaded: Family<DeviceLabel, Gauge>,
    pub rejected_full: Counter,
    pub store_write_retries: Counter,
    pub gpu_used_bytes: Family<DeviceLabel, Gauge>,
    pub gpu_total_bytes: Family<DeviceLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("triposg");
        let queue_depth = Gauge::default();
        let running = Gauge::default();
        let jobs = Family::<OutcomeLabel, Counter>::default();
        let stage_seconds: Family<StageLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(seconds_histogram);
        let job_seconds = seconds_histogram();
        let models_loaded = Family::<DeviceLabel, Gauge>::default();
        let rejected_full = Counter::default();
        let store_write_retries = Counter::default();
        let gpu_used_bytes = Family::<DeviceLabel, Gauge>::default();
        let gpu_total_bytes = Family::<DeviceLabel, Gauge>::default();
        registry.register(
            "queue_depth",
            "Jobs waiting for a worker",
            queue_depth.clone(),
        );
        registry.register("jobs_running", "Jobs running now", running.clone());
        registry.register("jobs", "Jobs finished, by outcome", jobs.clone());
        registry.register(
            "stage_seconds",
            "Time spent per job stage",
            stage_seconds.clone(),
        );
        registry.register(
            "job_seconds",
            "Time from start to finish of a job",
            job_seconds.clone(),
        );
        registry.register(
            "models_loaded",
            "Whether the models are resident on a device (1) or not (0)",
            models_loaded.clone(),
        );
        registry.register(
            "queue_rejections",
            "Submissions refused because the queue was full",
            rejected_full.clone(),
        );
        registry.register(
            "store_write_retries",
            "Writes of a job's state to the job store that failed and are tried again (a full disk?)",
            store_write_retries.clone(),
        );
        // Absent on CPU devices: there is no GPU memory to report.
        registry.register(
            "gpu_memory_used_bytes",
            "GPU memory in use on a worker's card (all processes)",
            gpu_used_bytes.clone(),
        );
        registry.register(
            "gpu_memory_total_bytes",
            "GPU memory of a worker's card",
            gpu_total_bytes.clone(),
        );
        Self {
            registry,
            queue_depth,
            running,
            jobs,
            stage_seconds,
            job_seconds,
            models_loaded,
            rejected_full,
            store_write_retries,
            gpu_used_bytes,
            gpu_total_bytes,
        }
    }
}

impl Metrics {
    pub fn outcome(&self, outcome: &str) {
        self.jobs
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
