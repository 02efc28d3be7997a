//! Attention read directly from packed projection outputs. With the checkpoints' head-first
//! packing, head `h` of part `p` (q, k or v) of token `t` is the `head_dim` run at
//! `t * row + (h * parts + p) * head_dim`, so every head can be addressed by strides, and the
//! result is written in the `[batch, tokens, heads * head_dim]` layout `to_out` expects.
//!
//! On sm_80 and newer a flash-attention kernel (`flash_attention.cu`) does it in one pass with
//! the scores kept in registers. Older cards (sm_70) run the scores GEMM, an in-place f32
//! softmax and the output GEMM through cuBLAS, per batch item, batched over heads:
//!
//! Keys and values are first gathered per head into buffers padded to a multiple of 8 rows
//! (zeros): with 2049 keys (the DiT's latents plus its time token) an odd key dimension forces
//! cuBLAS onto slow unaligned kernels (a third of a DiT step, measured), while the gather costs
//! one pass over k and v. Queries are read in place.
//! Queries are processed in chunks so the score buffer stays under [`SCORE_BUDGET`] elements
//! whatever the number of query points.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cublas::sys::cublasOperation_t;
use candle_core::cuda_backend::cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{bail, CudaStorage, CustomOp2, Layout, Result, Shape, Tensor};
use half::f16;

use super::{flash_kernel, has_flash, kernel};

/// Score elements per chunk (f16): 256 MiB.
const SCORE_BUDGET: usize = 128 << 20;
/// Longest key sequence the one-pass softmax keeps in shared memory (48 KiB of f32).
pub const MAX_KEYS: usize = 12_288;
/// Query rows per warp of the flash kernel (`ROWS_PER_WARP`).
const FLASH_ROWS_PER_WARP: usize = 32;
/// From this many query rows on, the flash kernel runs 4 warps per block (128 rows sharing each
/// K/V tile); below, 2 warps (64 rows), so that the DiT's 2049 tokens make blocks enough to
/// fill every SM in whole waves.
const FLASH_WIDE_FROM: usize = 8192;

/// Where q, k and v sit inside the packed projection outputs.
#[derive(Debug, Clone, Copy)]
pub struct PackedLayout {
    pub heads: usize,
    pub head_dim: usize,
    /// Parts per head in the q tensor (3 for a fused q/k/v projection, 1 for a q projection).
    pub q_parts: usize,
    pub q_part: usize,
    /// Parts per head in the k/v tensor (3 for q/k/v, 2 for a fused k/v projection).
    pub kv_parts: usize,
    pub k_part: usize,
    pub v_part: usize,
}

struct PackedAttention {
    layout: PackedLayout,
    scale: f32,
}

fn gemm_config(
    transa: cublasOperation_t,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    (lda, ldb, ldc): (usize, usize, usize),
    batch: usize,
    (stride_a, stride_b, stride_c): (usize, usize, usize),
) -> StridedBatchedConfig<f16> {
    StridedBatchedConfig {
        gemm: GemmConfig {
            transa,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: m as i32,
            n: n as i32,
            k: k as i32,
            alpha: f16::from_f32(alpha),
            lda: lda as i32,
            ldb: ldb as i32,
            beta: f16::ZERO,
            ldc: ldc as i32,
        },
        batch_size: batch as i32,
        stride_a: stride_a as i64,
        stride_b: stride_b as i64,
        stride_c: stride_c as i64,
    }
}

impl CustomOp2 for PackedAttention {
    fn name(&self) -> &'static str {
        "fused-packed-attention"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        bail!("fused attention runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        q: &CudaStorage,
        q_l: &Layout,
        kv: &CudaStorage,
        kv_l: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let p = self.layout;
        let (h, d) = (p.heads, p.head_dim);
        let (b, n, q_row) = q_l.shape().dims3()?;
        let (b_kv, m, kv_row) = kv_l.shape().dims3()?;
        if !q_l.is_contiguous()
            || !kv_l.is_contiguous()
            || b != b_kv
            || q_row != h * p.q_parts * d
            || kv_row != h * p.kv_parts * d
            || !d.is_multiple_of(2)
        {
            bail!("fused attention: unexpected input layout {p:?}, q {q_l:?}, kv {kv_l:?}");
        }
        let dev = q.device().clone();
        let q = q.as_cuda_slice::<f16>()?.slice(q_l.start_offset()..);
        let kv = kv.as_cuda_slice::<f16>()?.slice(kv_l.start_offset()..);
        // The kernel's 16-byte copies need q and kv to start 16-byte aligned.
        let aligned = q_l.start_offset().is_multiple_of(8) && kv_l.start_offset().is_multiple_of(8);
        if matches!(d, 16 | 32 | 64 | 128) && aligned && has_flash(&dev)? {
            // SAFETY: every element is written by the kernel.
            let out = unsafe { dev.alloc::<f16>(b * n * h * d)? };
            let warps = if n >= FLASH_WIDE_FROM { 4 } else { 2 };
            let kernel = flash_kernel(&dev, &format!("flash_attention_f16_d{d}_w{warps}"))?;
            let dims = [
                n,
                m,
                q_row,
                p.q_parts * d,
                p.q_part * d,
                kv_row,
                p.kv_parts * d,
            ];
            let [n32, m32, q_row32, q_head, q_off, kv_row32, kv_head] = dims.map(|v| v as u32);
            let (k_off, v_off) = ((p.k_part * d) as u32, (p.v_part * d) as u32);
            let scale_log2 = self.scale * std::f32::consts::LOG2_E;
            let stream = dev.cuda_stream();
            let mut launch = stream.launch_builder(&kernel);
            launch
                .arg(&q)
                .arg(&kv)
                .arg(&out)
                .arg(&n32)
                .arg(&m32)
                .arg(&q_row32)
                .arg(&q_head)
                .arg(&q_off)
                .arg(&kv_row32)
                .arg(&kv_head)
                .arg(&k_off)
                .arg(&v_off)
                .arg(&scale_log2);
            let cfg = LaunchConfig {
                grid_dim: (
                    n.div_ceil(FLASH_ROWS_PER_WARP * warps) as u32,
                    h as u32,
                    b as u32,
                ),
                block_dim: (32 * warps as u32, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: the kernel reads q ([b, n, q_row]) and kv ([b, m, kv_row]) at the packed
            // offsets checked above and writes the b * n * h * d outputs.
            unsafe { launch.launch(cfg) }.w()?;
            return Ok((
                CudaStorage::wrap_cuda_slice(out, dev),
                Shape::from((b, n, h * d)),
            ));
        }
        if m > MAX_KEYS {
            bail!("fused attention: {m} keys, more than the {MAX_KEYS} this GPU's path supports");
        }
        let softmax = kernel(&dev, "softmax_rows_f16")?;
        let blas = dev.cublas_handle();
        let stream = dev.cuda_stream();
        let ld_s = m.next_multiple_of(8);
        let gather = kernel(&dev, "gather_heads_f16")?;
        let padded = |part: usize| -> Result<_> {
            // SAFETY: the kernel writes every element (zeros past row m).
            let dst = unsafe { dev.alloc::<f16>(b * h * ld_s * d)? };
            let total = (b * h * ld_s * d / 2) as u64;
            let (rows, rows_padded) = (m as u32, ld_s as u32);
            let (row2, head2, offset2) = (
                (kv_row / 2) as u32,
                (p.kv_parts * d / 2) as u32,
                (part * d / 2) as u32,
            );
            let (heads, d2) = (h as u32, (d / 2) as u32);
            let mut launch = stream.launch_builder(&gather);
            launch
                .arg(&kv)
                .arg(&dst)
                .arg(&rows)
                .arg(&rows_padded)
                .arg(&row2)
                .arg(&head2)
                .arg(&offset2)
                .arg(&heads)
                .arg(&d2)
                .arg(&total);
            let cfg = LaunchConfig {
                grid_dim: (total.div_ceil(256).min(65_535 * 16) as u32, 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: reads stay inside kv ([b, m, kv_row]); dst has b * h * ld_s * d elements.
            unsafe { launch.launch(cfg) }.w()?;
            Ok(dst)
        };
        let (k_heads, v_heads) = (padded(p.k_part)?, padded(p.v_part)?);
        let chunk = (SCORE_BUDGET / (h * ld_s)).clamp(1, n);
        // SAFETY: every element is written by the GEMMs below before it is read.
        let mut out = unsafe { dev.alloc::<f16>(b * n * h * d)? };
        let mut scores = unsafe { dev.alloc::<f16>(h * chunk * ld_s)? };
        let head_size = ld_s * d;
        for bi in 0..b {
            let kv_at = bi * h * head_size;
            for n0 in (0..n).step_by(chunk) {
                let nc = chunk.min(n - n0);
                let q_at = (bi * n + n0) * q_row + p.q_part * d;
                // Column-major view: scores^T [ld_s x nc] = K [ld_s x d] . Q^T [d x nc], per head.
                let cfg = gemm_config(
                    cublasOperation_t::CUBLAS_OP_T,
                    (ld_s, nc, d),
                    self.scale,
                    (d, q_row, ld_s),
                    h,
                    (head_size, p.q_parts * d, nc * ld_s),
                );
                // SAFETY: offsets and strides stay inside q, k_heads and scores.
                unsafe {
                    blas.gemm_strided_batched(
                        cfg,
                        &k_heads.slice(kv_at..),
                        &q.slice(q_at..),
                        &mut scores,
                    )
                }
                .w()?;
                let (cols, ld) = (m as u32, ld_s as u32);
                let mut launch = stream.launch_builder(&softmax);
                launch.arg(&mut scores).arg(&cols).arg(&ld);
                let cfg = LaunchConfig {
                    grid_dim: ((h * nc) as u32, 1, 1),
                    block_dim: (256, 1, 1),
                    shared_mem_bytes: (m * 4) as u32,
                };
                // SAFETY: h * nc rows of ld_s elements exist in scores; m <= MAX_KEYS.
                unsafe { launch.launch(cfg) }.w()?;
                // out^T [d x nc] = V^T [d x ld_s] . P^T [ld_s x nc], per head, into the
                // [.., h * d] output rows.
                let cfg = gemm_config(
                    cublasOperation_t::CUBLAS_OP_N,
                    (d, nc, ld_s),
                    1.0,
                    (d, ld_s, h * d),
                    h,
                    (head_size, nc * ld_s, d),
                );
                let out_at = (bi * n + n0) * h * d;
                // SAFETY: as above; the output rows of this chunk start at out_at.
                unsafe {
                    blas.gemm_strided_batched(
                        cfg,
                        &v_heads.slice(kv_at..),
                        &scores,
                        &mut out.slice_mut(out_at..),
                    )
                }
                .w()?;
            }
        }
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            Shape::from((b, n, h * d)),
        ))
    }
}

/// softmax(q k^T * scale) v for every head, reading q from `q` and k, v from `kv` as `layout`
/// says; returns `[batch, tokens, heads * head_dim]`.
pub fn packed_attention(
    q: &Tensor,
    kv: &Tensor,
    layout: PackedLayout,
    scale: f64,
) -> Result<Tensor> {
    q.apply_op2_no_bwd(
        kv,
        &PackedAttention {
            layout,
            scale: scale as f32,
        },
    )
}
