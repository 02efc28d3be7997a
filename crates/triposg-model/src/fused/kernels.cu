// Kernels for the CUDA fast path, compiled at run time by NVRTC to PTX for NVRTC's default virtual
// architecture, which the driver JIT-compiles for the GPU that is present: one binary serves every
// card its CUDA version supports without per-architecture builds of these kernels (sm_70, Titan V,
// needs a CUDA 12 build: CUDA 13's NVRTC starts at compute_75).
// f16 values are handled as raw 16-bit words with PTX conversions: NVRTC on a user's machine has
// no CUDA toolkit headers (cuda_fp16.h) to include.

typedef unsigned short half_t;
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float h2f(half_t h) {
  float f;
  asm("{ cvt.f32.f16 %0, %1; }" : "=f"(f) : "h"(h));
  return f;
}

__device__ __forceinline__ half_t f2h(float f) {
  half_t h;
  asm("{ cvt.rn.f16.f32 %0, %1; }" : "=h"(h) : "f"(f));
  return h;
}

// Eight f16 values from one 16-byte word.
__device__ __forceinline__ void unpack8(uint4 p, float *v) {
  unsigned int w[4] = {p.x, p.y, p.z, p.w};
#pragma unroll
  for (int j = 0; j < 4; j++) {
    v[2 * j] = h2f((half_t)(w[j] & 0xffff));
    v[2 * j + 1] = h2f((half_t)(w[j] >> 16));
  }
}

__device__ __forceinline__ float gelu_erf(float x) {
  return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
}

// The epilogue of a GEMM, in place on its fresh f16 output x, a row-major [rows, 2 * pairs]
// matrix, two values per thread, in f32 with one rounding: x[r, c] + bias[c], then (mode 1) the
// exact erf GELU, or (mode 2) plus residual[r, c] (same shape as x; ignored otherwise).
extern "C" __global__ void bias_epilogue_f16(unsigned int *x, const unsigned int *bias,
                                             const unsigned int *residual, unsigned int rows,
                                             unsigned int pairs, unsigned int mode) {
  unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= pairs) return;
  unsigned int b = bias[c];
  float b0 = h2f((half_t)(b & 0xffff)), b1 = h2f((half_t)(b >> 16));
  for (unsigned int r = blockIdx.y; r < rows; r += gridDim.y) {
    unsigned long long i = (unsigned long long)r * pairs + c;
    unsigned int v = x[i];
    float lo = h2f((half_t)(v & 0xffff)) + b0, hi = h2f((half_t)(v >> 16)) + b1;
    if (mode == 1) {
      lo = gelu_erf(lo);
      hi = gelu_erf(hi);
    } else if (mode == 2) {
      unsigned int rv = residual[i];
      lo += h2f((half_t)(rv & 0xffff));
      hi += h2f((half_t)(rv >> 16));
    }
    x[i] = (unsigned int)f2h(lo) | ((unsigned int)f2h(hi) << 16);
  }
}

// bias + erf GELU in place, as bias_epilogue_f16 mode 1, on 8 values per thread: x is a
// row-major [rows, 8 * octs] f16 matrix, bias[8 * octs]. The feed-forward's hidden layer, whose
// GEMM cannot apply erf GELU itself (cuBLASLt's GELU epilogue is the tanh approximation). With
// one 4-byte word per thread, too few bytes were in flight to keep the memory busy.
extern "C" __global__ void bias_gelu_f16x8(uint4 *x, const uint4 *bias, unsigned int rows,
                                           unsigned int octs) {
  unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= octs) return;
  float b[8];
  unpack8(bias[c], b);
  for (unsigned int r = blockIdx.y; r < rows; r += gridDim.y) {
    unsigned long long i = (unsigned long long)r * octs + c;
    float v[8];
    unpack8(x[i], v);
    unsigned int out[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
      out[j] = (unsigned int)f2h(gelu_erf(v[2 * j] + b[2 * j])) |
               ((unsigned int)f2h(gelu_erf(v[2 * j + 1] + b[2 * j + 1])) << 16);
    }
    x[i] = make_uint4(out[0], out[1], out[2], out[3]);
  }
}

// Block-wide reduction (sum or max) of one float per thread; blockDim.x is a multiple of 32.
template <bool MAX>
__device__ __forceinline__ float block_reduce(float v, float *scratch) {
  for (int off = 16; off > 0; off >>= 1) {
    float o = __shfl_xor_sync(0xffffffff, v, off);
    v = MAX ? fmaxf(v, o) : v + o;
  }
  unsigned int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();  // scratch may still be read from the previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : (MAX ? NEG_INF : 0.f);
  for (int off = 16; off > 0; off >>= 1) {
    float o = __shfl_xor_sync(0xffffffff, v, off);
    v = MAX ? fmaxf(v, o) : v + o;
  }
  return v;
}

// In-place softmax of each row of `cols` f16 values (row stride `ld`), computed in f32 with the
// row held in shared memory (cols * 4 bytes of dynamic shared memory): one read, one exp and one
// write per value. One block per row.
extern "C" __global__ void softmax_rows_f16(half_t *s, unsigned int cols, unsigned int ld) {
  extern __shared__ float vals[];
  __shared__ float scratch[32];
  half_t *row = s + (unsigned long long)blockIdx.x * ld;
  float m = NEG_INF;
  for (unsigned int c = threadIdx.x; c < cols; c += blockDim.x) {
    float v = h2f(row[c]);
    vals[c] = v;
    m = fmaxf(m, v);
  }
  m = block_reduce<true>(m, scratch);
  float l = 0.f;
  for (unsigned int c = threadIdx.x; c < cols; c += blockDim.x) {
    float e = expf(vals[c] - m);
    vals[c] = e;
    l += e;
  }
  float inv = 1.f / block_reduce<false>(l, scratch);
  for (unsigned int c = threadIdx.x; c < cols; c += blockDim.x) row[c] = f2h(vals[c] * inv);
  // Padding columns meet zero rows of V: make them exact zeros, not stale scores.
  for (unsigned int c = cols + threadIdx.x; c < ld; c += blockDim.x) row[c] = 0;
}

// Gathers one part (k or v) of every head out of a packed projection [batch, rows, row2 words]
// into [batch, heads, rows_padded, d2 words] with zero rows after `rows`, so the attention GEMMs
// see 16-byte aligned, multiple-of-8 key dimensions. Words are pairs of f16.
extern "C" __global__ void gather_heads_f16(const unsigned int *src, unsigned int *dst,
                                            unsigned int rows, unsigned int rows_padded,
                                            unsigned int row2, unsigned int head2,
                                            unsigned int offset2, unsigned int heads,
                                            unsigned int d2, unsigned long long total) {
  for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < total;
       i += (unsigned long long)gridDim.x * blockDim.x) {
    unsigned int c = i % d2;
    unsigned long long t = i / d2;
    unsigned int r = t % rows_padded;
    unsigned long long bh = t / rows_padded;
    unsigned int h = bh % heads;
    unsigned long long b = bh / heads;
    dst[i] = r < rows ? src[(b * rows + r) * row2 + h * head2 + offset2 + c] : 0u;
  }
}

// In-place RMS norm (f32 statistics) of the rows `part`, `part + parts`, ... of a contiguous
// [rows * parts, d] f16 matrix, with weight w[d]: q or k heads inside a packed q/k/v projection.
// One warp per row.
extern "C" __global__ void rms_norm_part_f16(half_t *x, const half_t *w, unsigned int rows,
                                             unsigned int d, unsigned int parts,
                                             unsigned int part, float eps) {
  unsigned int r = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (r >= rows) return;
  half_t *row = x + ((unsigned long long)r * parts + part) * d;
  float ss = 0.f;
  for (unsigned int c = lane; c < d; c += 32) {
    float v = h2f(row[c]);
    ss += v * v;
  }
  for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffff, ss, off);
  float scale = rsqrtf(ss / d + eps);
  for (unsigned int c = lane; c < d; c += 32) row[c] = f2h(h2f(row[c]) * scale * h2f(w[c]));
}

// Layer norm of each row of a contiguous [rows, cols] f16 matrix into y, with weight w and bias b
// (f16, cols each): f32 statistics in two passes over the row held in registers (mean, then the
// mean square deviation, as PyTorch), one rounding. One warp per row; every lane loads 8 values
// (16 bytes) at a time, so cols must be a multiple of 256 and at most 256 * LN_CHUNKS.
#define LN_CHUNKS 8

extern "C" __global__ void layer_norm_f16(const uint4 *x, const uint4 *w, const uint4 *b, uint4 *y,
                                          unsigned int rows, unsigned int cols, float eps) {
  unsigned int r = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (r >= rows) return;
  unsigned int chunks = cols / 256, row8 = cols / 8;
  const uint4 *xr = x + (unsigned long long)r * row8;
  float v[LN_CHUNKS][8];
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < LN_CHUNKS; i++) {
    if (i < chunks) {
      unpack8(xr[i * 32 + lane], v[i]);
#pragma unroll
      for (int j = 0; j < 8; j++) sum += v[i][j];
    }
  }
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffff, sum, off);
  float mean = sum / cols, ss = 0.f;
#pragma unroll
  for (int i = 0; i < LN_CHUNKS; i++) {
    if (i < chunks) {
#pragma unroll
      for (int j = 0; j < 8; j++) {
        float d = v[i][j] - mean;
        ss += d * d;
      }
    }
  }
  for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffff, ss, off);
  float rstd = rsqrtf(ss / cols + eps);
  uint4 *yr = y + (unsigned long long)r * row8;
#pragma unroll
  for (int i = 0; i < LN_CHUNKS; i++) {
    if (i < chunks) {
      float wv[8], bv[8];
      unpack8(w[i * 32 + lane], wv);
      unpack8(b[i * 32 + lane], bv);
      unsigned int out[4];
#pragma unroll
      for (int j = 0; j < 4; j++) {
        float lo = (v[i][2 * j] - mean) * rstd * wv[2 * j] + bv[2 * j];
        float hi = (v[i][2 * j + 1] - mean) * rstd * wv[2 * j + 1] + bv[2 * j + 1];
        out[j] = (unsigned int)f2h(lo) | ((unsigned int)f2h(hi) << 16);
      }
      yr[i * 32 + lane] = make_uint4(out[0], out[1], out[2], out[3]);
    }
  }
}
