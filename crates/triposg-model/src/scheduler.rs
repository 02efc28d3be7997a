//! TripoSG's `RectifiedFlowScheduler` (`scheduler/scheduler_config.json`).
//!
//! Sigmas run from 1 (noise) down towards 0 (shape); the model predicts the velocity from data
//! to noise, so an Euler step moves `x += (sigma_i - sigma_{i+1}) * v`, upstream's sign.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerConfig {
    #[serde(default = "thousand")]
    pub num_train_timesteps: usize,
    #[serde(default = "one")]
    pub shift: f64,
    #[serde(default)]
    pub use_dynamic_shifting: bool,
}

fn thousand() -> usize {
    1000
}

fn one() -> f64 {
    1.0
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: thousand(),
            shift: one(),
            use_dynamic_shifting: false,
        }
    }
}

/// The schedule for one generation: `timesteps[i]` is fed to the model, `sigmas[i]` and
/// `sigmas[i + 1]` bound the Euler step (`sigmas` ends with 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub timesteps: Vec<f32>,
    pub sigmas: Vec<f32>,
}

impl SchedulerConfig {
    pub fn schedule(&self, num_inference_steps: usize) -> Result<Schedule, String> {
        if num_inference_steps == 0 {
            return Err("the number of inference steps must be at least 1".into());
        }
        if self.use_dynamic_shifting {
            return Err("dynamic shifting needs a resolution-dependent `mu`, which TripoSG never sets; use a scheduler config with use_dynamic_shifting=false".into());
        }
        let n_train = self.num_train_timesteps as f64;
        // Upstream computes the linspace and the shift in f64 (numpy), then rounds to f32.
        let mut sigmas: Vec<f32> = (0..num_inference_steps)
            .map(|i| {
                let sigma = (1.0 - i as f64 / num_inference_steps as f64) * n_train / n_train;
                (self.shift * sigma / (1.0 + (self.shift - 1.0) * sigma)) as f32
            })
            .collect();
        let timesteps = sigmas.iter().map(|s| s * n_train as f32).collect();
        sigmas.push(0.0);
        Ok(Schedule { timesteps, sigmas })
    }
}
