//! `--memory-limit`: the most memory one job may take on its device (RAM on the CPU, the card's
//! memory on a GPU). Before a job runs, its peak is estimated from its parameters, so that a job
//! too large is made to fit (a smaller decode batch) or refused with what to lower, instead of
//! taking the process and every queued job down. On the CPU a failed allocation aborts the
//! process, so an estimate up front is the only place to stop it; on a GPU candle reports
//! out-of-memory as an error, which [`out_of_memory`] turns into the same kind of job error.

use std::path::Path;

use bytesize::ByteSize;
use candle_core::{DType, Device};
use triposg_core::{Placement, ShapeParams};
use triposg_model::checkpoint::{Checkpoint, Component};
use triposg_model::dit::DiTConfig;
use triposg_model::vae::VaeConfig;

/// DINOv2's tokens for the 224-pixel input: (224 / 14)^2 patches and the class token.
const IMAGE_TOKENS: u64 = 257;
/// Below this many points per VAE call the per-call overhead dominates and a job crawls: such a
/// job is refused rather than run at a snail's pace.
const MIN_QUERY_BATCH: usize = 1024;
/// Points per decode call on the fused CUDA path ([`default_batch`]).
const GPU_BATCH: usize = 32_768;
/// Most score bytes the fused path's attention holds at once (its cuBLAS path's chunk budget).
const SCORES: u64 = 256 << 20;
/// The server around the job: runtime, job store, HTTP buffers, the photo, its prepared copy
/// and DINOv2's activations (257 tokens), about 60 MiB of resident memory when idle on the CPU.
const BASELINE: u64 = 64 << 20;

/// What a job's peak is made of, in bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub weights: u64,
    pub denoise: u64,
    /// The VAE's key/values of the shape tokens, held through the whole decode.
    pub decode_fixed: u64,
    /// Each query point of a decode batch.
    pub decode_per_point: u64,
    /// The sparse SDF grid and the mesh made from it, at the job's octree depth.
    pub surface: u64,
    pub octree_depth: u32,
    /// The decode batch when memory allows ([`default_batch`]).
    pub max_batch: usize,
}

impl Estimate {
    /// The estimate for `params` with the checkpoint's model sizes.
    ///
    /// Basis, per part (s = bytes per value of `dtype`):
    /// - weights: every parameter the port loads, times s (they stay resident between jobs);
    ///   plus the background-removal model's file when present (stored and run in f32).
    /// - denoise: the transformer runs the conditional and unconditional branch as a batch of 2
    ///   over T tokens of width D: its long skips keep half the layers' outputs (L/2 x 2TD), a
    ///   block works on about 12 tensors of 2TD (q, k, v, output, the 4D-wide MLP, norms), and
    ///   attention holds scores and their softmax, 2 x 2 x heads x T x max(T, 257).
    /// - decode: the VAE's self-attention over the T shape tokens (scores and softmax, 2 x heads x
    ///   T^2, and 4 tensors of T x width), then per query point the cross-attention scores and
    ///   softmax (2 x heads x T) and about 8 tensors of the decoder's width.
    /// - `fused` (CUDA, f16): attention keeps its scores in registers (flash kernel) or in
    ///   chunks of at most [`SCORES`] bytes (cuBLAS on sm_70), instead of the terms above.
    /// - surface: the octree keeps samples in a shell around the surface, 5 to 6 samples thick
    ///   after dilation; a surface filling the box has an area of about 4 R^2 (R the finest grid's
    ///   resolution), so about 32 R^2 samples at 28 bytes (12 kept, 16 while sorting). The mesh
    ///   has about 12 R^2 faces and 6 R^2 vertices (12 bytes each), kept 4 times over while it is
    ///   cleaned, simplified, prepared for print and encoded.
    pub fn new(
        dit: &DiTConfig,
        vae: &VaeConfig,
        weights: u64,
        dtype: DType,
        fused: bool,
        params: &ShapeParams,
    ) -> Self {
        let s = dtype.size_in_bytes() as u64;
        let t = params.num_tokens as u64;
        let (d, layers, heads) = (
            dit.width as u64,
            dit.num_layers as u64,
            dit.num_attention_heads as u64,
        );
        let batch_td = 2 * t * d * s;
        let (dv, vheads) = (vae.width_decoder as u64, vae.num_attention_heads as u64);
        let (dit_scores, vae_scores, point_scores) = if fused {
            (SCORES, SCORES, 0)
        } else {
            (
                2 * 2 * heads * t * t.max(IMAGE_TOKENS) * s,
                2 * vheads * t * t * s,
                2 * vheads * t * s,
            )
        };
        let denoise = (layers / 2 + 12) * batch_td + dit_scores;
        let decode_fixed = vae_scores + 4 * t * dv * s;
        let decode_per_point = point_scores + 8 * dv * s + 3 * 4;
        let r = *triposg_mesh::octree::resolutions(params.octree_depth)
            .last()
            .unwrap_or(&1) as u64;
        let grid = 32 * r * r * 28;
        let mesh = 4 * (12 * r * r + 6 * r * r) * 12;
        Self {
            weights,
            denoise,
            decode_fixed,
            decode_per_point,
            surface: grid + mesh,
            octree_depth: params.octree_depth,
            max_batch: batch_for(fused),
        }
    }

    /// From the weights folder's configs; `None` when they cannot be read (loading the models
    /// then fails with its own advice). Offloaded models are on a GPU one at a time: the
    /// largest (the transformer) counts, as if it stayed for every stage.
    pub fn from_weights(
        weights: &Path,
        device: &Device,
        dtype: DType,
        placement: Placement,
        params: &ShapeParams,
    ) -> Option<Self> {
        let ckpt = Checkpoint::new(weights.join("TripoSG"));
        let mut sizes = Vec::new();
        for c in Component::ALL {
            let tensors = ckpt.required_tensors(c).ok()?;
            sizes.push(
                tensors
                    .iter()
                    .map(|(_, shape)| shape.iter().product::<usize>() as u64)
                    .sum::<u64>(),
            );
        }
        let parameters = on_device(&sizes, placement, device.is_cuda());
        let rmbg =
            std::fs::metadata(weights.join("RMBG-1.4/model.safetensors")).map_or(0, |m| m.len());
        let resident = parameters * dtype.size_in_bytes() as u64 + rmbg;
        let (dit, vae) = (ckpt.dit_config().ok()?, ckpt.vae_config().ok()?);
        Some(Self::new(
            &dit,
            &vae,
            resident,
            dtype,
            fused(device, dtype),
            params,
        ))
    }

    /// The peak with `batch` points per decode call. Stages run one after another, so only the
    /// weights stay while each stage's own working memory comes and goes; the surface grid grows
    /// during the decode.
    pub fn peak(&self, batch: usize) -> u64 {
        let decode = self.decode_fixed + batch as u64 * self.decode_per_point + self.surface;
        BASELINE + self.weights + self.denoise.max(decode)
    }

    /// The largest decode batch up to the default that keeps the job within `limit`, or the
    /// sentence the job fails with.
    pub fn fit(&self, limit: u64) -> Result<usize, String> {
        let room = limit.saturating_sub(BASELINE + self.weights);
        let batch = if self.denoise > room {
            0
        } else {
            let left = room.saturating_sub(self.decode_fixed + self.surface);
            (left / self.decode_per_point.max(1)).min(self.max_batch as u64) as usize
        };
        if batch >= MIN_QUERY_BATCH {
            return Ok(batch);
        }
        let needs = self.peak(MIN_QUERY_BATCH);
        let advice = if BASELINE + self.weights > limit {
            "the models alone do not fit: raise --memory-limit, or use f16 weights (--dtype f16) on a GPU"
        } else if self.surface >= self.denoise.max(self.decode_fixed) {
            "lower the octree depth (each level less needs about a quarter of the surface's memory) or raise --memory-limit"
        } else {
            "lower num_tokens (the memory of the model run grows with its square) or raise --memory-limit"
        };
        Err(format!(
            "this job needs about {} of memory (models {}, octree depth {} surface {}) but --memory-limit is {}: {advice}",
            human(needs),
            human(BASELINE + self.weights),
            self.octree_depth,
            human(self.surface),
            human(limit),
        ))
    }
}

/// The decode batch that keeps a job within `limit` (`None`: no limit), or the sentence it
/// fails with. Weights whose configs cannot be read get the default: loading them then fails
/// with its own advice.
pub fn query_batch(
    limit: Option<u64>,
    weights: &Path,
    device: &Device,
    dtype: DType,
    placement: Placement,
    params: &ShapeParams,
) -> Result<usize, String> {
    let full = default_batch(device, dtype);
    let Some(limit) = limit else {
        return Ok(full);
    };
    let Some(estimate) = Estimate::from_weights(weights, device, dtype, placement, params) else {
        return Ok(full);
    };
    let batch = estimate.fit(limit)?;
    if batch < full {
        tracing::info!("decoding {batch} points per call to stay within --memory-limit");
    }
    Ok(batch)
}

/// Parameters on the device during a job, from each model's count: all of them, or offloaded
/// to host memory only the largest at a time; on the CPU (and Metal's shared memory) the host
/// copy is the device's memory, so offloading saves nothing there.
fn on_device(sizes: &[u64], placement: Placement, cuda: bool) -> u64 {
    if placement == Placement::Offload && cuda {
        sizes.iter().copied().max().unwrap_or(0)
    } else {
        sizes.iter().sum()
    }
}

/// The decode batch a job uses on `device` when memory allows: on the fused CUDA path a query
/// point costs ~16 KiB (no scores held), and fewer, larger calls keep the card busy between the
/// host's synchronisations; elsewhere candle's attention holds 2 x heads x tokens scores per
/// point (~130 KiB in f32 at the released size).
fn default_batch(device: &Device, dtype: DType) -> usize {
    batch_for(fused(device, dtype))
}

fn batch_for(fused: bool) -> usize {
    if fused {
        GPU_BATCH
    } else {
        ShapeParams::default().query_batch
    }
}

/// Whether the model runs the CUDA f16 kernels of `triposg_model`'s fused path.
fn fused(device: &Device, dtype: DType) -> bool {
    device.is_cuda() && dtype == DType::F16
}

fn human(bytes: u64) -> String {
    ByteSize(bytes).display().iec().to_string()
}

/// The job error for a device that ran out of memory during the run (candle's CUDA and Metal
/// errors say "out of memory"), or `None` for any other error.
pub fn out_of_memory(error: &dyn std::fmt::Display) -> Option<String> {
    let text = error.to_string();
    text.to_ascii_lowercase()
        .contains("out of memory")
        .then(|| format!("the device ran out of memory ({text}): lower the octree depth or num_tokens, start the server with --offload if it is not (one model on the card at a time), or set --memory-limit below the device's memory so that such jobs are made smaller or refused before they start"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(pairs: &[(&str, &str)]) -> ShapeParams {
        let params = crate::params::JobParams::from_fields(&crate::params::fields(pairs)).unwrap();
        params.shape(params.seed)
    }

    /// The released model in f16: about 1.5 billion parameters.
    fn released(params: &ShapeParams) -> Estimate {
        Estimate::new(
            &DiTConfig::triposg(),
            &VaeConfig::triposg(),
            3 << 30,
            DType::F16,
            false,
            params,
        )
    }

    #[test]
    fn the_released_model_fits_a_large_card_and_shrinks_its_batch_on_a_smaller_one() {
        let e = released(&job(&[]));
        let roomy = e.fit(24 << 30).unwrap();
        assert_eq!(roomy, batch_for(false));
        assert!(e.peak(roomy) > 4 << 30, "{}", human(e.peak(roomy)));
        let tight = e.peak(MIN_QUERY_BATCH * 2);
        let batch = e.fit(tight).unwrap();
        assert!(
            (MIN_QUERY_BATCH * 2..batch_for(false)).contains(&batch),
            "{batch}"
        );
        assert!(e.peak(batch) <= tight);
    }

    /// On the fused CUDA path the released model in f16 decodes in large batches within 6 GiB.
    #[test]
    fn the_fused_gpu_path_decodes_large_batches_within_six_gib() {
        let params = job(&[]);
        let e = Estimate::new(
            &DiTConfig::triposg(),
            &VaeConfig::triposg(),
            3 << 30,
            DType::F16,
            true,
            &params,
        );
        assert_eq!(e.fit(6 << 30).unwrap(), GPU_BATCH);
        assert!(e.decode_per_point * 4 < released(&params).decode_per_point);
    }

    #[test]
    fn a_job_that_cannot_fit_says_what_it_needs_and_what_to_lower() {
        let deep = released(&job(&[("octree_depth", "10")]));
        let limit = deep.peak(MIN_QUERY_BATCH) - 1;
        let err = deep.fit(limit).unwrap_err();
        assert!(err.contains("octree depth 10"), "{err}");
        assert!(
            err.contains(&format!("--memory-limit is {}", human(limit))),
            "{err}"
        );
        assert!(err.contains("lower the octree depth"), "{err}");
        assert!(deep.fit(limit + 1).is_ok());
        let err = released(&job(&[])).fit(2 << 30).unwrap_err();
        assert!(err.contains("the models alone do not fit"), "{err}");
        let many_tokens = released(&job(&[("num_tokens", "8192"), ("octree_depth", "7")]));
        let err = many_tokens.fit(8 << 30).unwrap_err();
        assert!(err.contains("lower num_tokens"), "{err}");
    }

    #[test]
    fn each_octree_level_needs_about_four_times_the_surface_memory() {
        let surface = |depth: &str| released(&job(&[("octree_depth", depth)])).surface as f64;
        let ratio = surface("10") / surface("9");
        assert!((3.5..4.5).contains(&ratio), "{ratio}");
    }

    #[test]
    fn device_out_of_memory_errors_become_advice_and_others_pass() {
        let cuda = candle_core::Error::Msg(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into(),
        );
        let message = out_of_memory(&cuda).unwrap();
        assert!(message.contains("lower the octree depth"), "{message}");
        assert!(message.contains("--offload"), "{message}");
        assert!(message.contains("CUDA_ERROR_OUT_OF_MEMORY"), "{message}");
        let shape = candle_core::Error::Msg("shape mismatch in matmul".into());
        assert_eq!(out_of_memory(&shape), None);
    }

    /// Offloaded, only the largest model (the transformer) is on a GPU during the job; on the
    /// CPU offloading changes nothing.
    #[test]
    fn offloaded_models_count_only_the_largest_on_a_gpu() {
        let weights =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny");
        let params = job(&[]);
        let estimate = |p| {
            Estimate::from_weights(&weights, &Device::Cpu, DType::F32, p, &params)
                .unwrap()
                .weights
        };
        assert_eq!(estimate(Placement::Offload), estimate(Placement::Device));
        let sizes = [3, 7, 2];
        assert_eq!(on_device(&sizes, Placement::Offload, true), 7);
        assert_eq!(on_device(&sizes, Placement::Device, true), 12);
        assert_eq!(on_device(&sizes, Placement::Offload, false), 12);
    }
}
