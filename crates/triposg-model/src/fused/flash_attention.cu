// Flash attention (the FlashAttention-2 scheme) for the f16 path on sm_80 and newer: scores
// never leave registers. Each warp owns 16 query rows and walks the keys 64 at a time: S = Q K^T
// on tensor cores (mma.sync m16n8k16, f32 accumulation), an online softmax in registers (running
// row max and sum, the output rescaled when the max grows), then O += P V with P converted to
// f16 in place: the accumulator layout of S is the operand layout P needs, so nothing is
// shuffled. K and V tiles are staged in shared memory with cp.async (each copy overlapping the
// other's compute) and read with ldmatrix;
// rows are padded by 8 halves so the 8 rows an ldmatrix reads fall on different banks.
//
// Compiled at run time by NVRTC for compute_80 (the instructions need it); older GPUs (sm_70,
// Titan V) keep the cuBLAS + softmax path. Raw 16-bit words and PTX only: NVRTC on a user's
// machine has no toolkit headers.
//
// q, k and v are read where the projections wrote them (see attention.rs): row `t` of head `h`
// of a part starts at `t * row + h * head_stride + part_offset`.

typedef unsigned short half_t;
typedef unsigned int u32;
typedef unsigned long long u64;

#define NEG_INF __int_as_float(0xff800000)

constexpr int WARPS = 4;
constexpr int BLOCK_M = 16 * WARPS;  // query rows per block
constexpr int BLOCK_N = 64;          // keys per tile
constexpr int PAD = 8;               // halves of padding per shared-memory row

__device__ __forceinline__ u32 smem_addr(const void *p) {
  u32 a;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
  return a;
}

// 16 bytes global -> shared, asynchronously; `bytes` < 16 zero-fills the rest (0: all zeros).
__device__ __forceinline__ void cp_async16(u32 dst, const void *src, u32 bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(bytes));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(u32 (&r)[4], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ __forceinline__ void ldmatrix_x4_trans(u32 (&r)[4], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// c += a (16x16, row-major) . b (16x8, column-major), f16 in, f32 accumulate.
__device__ __forceinline__ void mma16816(float (&c)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two f32 -> one f16x2 word, `lo` in the low half (the lower column index).
__device__ __forceinline__ u32 pack_f16x2(float lo, float hi) {
  u32 r;
  asm("{ cvt.rn.f16x2.f32 %0, %1, %2; }" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("{ ex2.approx.ftz.f32 %0, %1; }" : "=f"(y) : "f"(x));
  return y;
}

// Copies keys j0 .. j0 + BLOCK_N of one part (k or v, rows `row` halves apart from `src`) into a
// shared-memory tile, asynchronously; keys past m read as zeros.
template <int D>
__device__ __forceinline__ void stage_tile(half_t (*tile)[D + PAD], const half_t *src, u32 j0,
                                           u32 m, u32 row, int tid) {
  constexpr int CHUNKS = BLOCK_N * D / 8;  // 16-byte pieces
  for (int c = tid; c < CHUNKS; c += WARPS * 32) {
    const int r = c / (D / 8), col = (c % (D / 8)) * 8;
    const u32 key = j0 + r;
    const u64 at = (u64)(key < m ? key : 0) * row + col;
    cp_async16(smem_addr(&tile[r][col]), src + at, key < m ? 16 : 0);
  }
}

// Grid (ceil(n / BLOCK_M), heads, batch), WARPS * 32 threads. `scale_log2` is the softmax
// scale times log2(e): scores are kept in base 2 so one ex2 per score does the exponential.
template <int D>
__device__ __forceinline__ void flash_attention(const half_t *__restrict__ q,
                                                const half_t *__restrict__ kv,
                                                half_t *__restrict__ out, u32 n, u32 m,
                                                u32 q_row, u32 q_head, u32 q_off, u32 kv_row,
                                                u32 kv_head, u32 k_off, u32 v_off,
                                                float scale_log2) {
  static_assert(D % 16 == 0 && D <= 128, "head dim must be a multiple of 16, at most 128");
  __shared__ __align__(16) half_t sk[BLOCK_N][D + PAD];
  __shared__ __align__(16) half_t sv[BLOCK_N][D + PAD];

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane >> 2, t = lane & 3;  // mma fragment row group and column pair
  const u32 heads = gridDim.y, h = blockIdx.y, b = blockIdx.z;
  const u32 row0 = blockIdx.x * BLOCK_M + warp * 16;
  const half_t *qb = q + (u64)b * n * q_row + h * q_head + q_off;
  const half_t *kb = kv + (u64)b * m * kv_row + h * kv_head + k_off;
  const half_t *vb = kv + (u64)b * m * kv_row + h * kv_head + v_off;

  // This warp's 16 query rows as mma A fragments, straight from global memory (read once).
  u32 qa[D / 16][4];
  {
    const u32 r_lo = row0 + g, r_hi = row0 + g + 8;
    const u32 *lo = reinterpret_cast<const u32 *>(qb + (u64)r_lo * q_row);
    const u32 *hi = reinterpret_cast<const u32 *>(qb + (u64)r_hi * q_row);
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const int c = kk * 8 + t;  // in f16x2 words
      qa[kk][0] = r_lo < n ? lo[c] : 0u;
      qa[kk][1] = r_hi < n ? hi[c] : 0u;
      qa[kk][2] = r_lo < n ? lo[c + 4] : 0u;
      qa[kk][3] = r_hi < n ? hi[c + 4] : 0u;
    }
  }

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float max_lo = NEG_INF, max_hi = NEG_INF;  // running row maxima (base-2 scores)
  float sum_lo = 0.f, sum_hi = 0.f;          // this thread's share of the row sums

  // Copies overlap compute as in FlashAttention-2: V of a tile arrives while its S = Q K^T is
  // computed, and K of the next tile while this tile's softmax and P V run. One buffer each
  // for K and V; every iteration commits two copy groups (one may be empty), so the waits
  // below always count the same.
  stage_tile<D>(sk, kb, 0, m, kv_row, tid);
  cp_async_commit();
  for (u32 j0 = 0; j0 < m; j0 += BLOCK_N) {
    stage_tile<D>(sv, vb, j0, m, kv_row, tid);
    cp_async_commit();
    cp_async_wait<1>();  // K of this tile
    __syncthreads();

    // S = Q K^T: 8 tiles of 8 keys; ldmatrix reads two key tiles' B fragments at a time.
    float s[BLOCK_N / 8][4];
#pragma unroll
    for (int i = 0; i < BLOCK_N / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < BLOCK_N / 16; ++np) {
        u32 kb4[4];
        const int key = np * 16 + (lane & 7) + (lane >> 4) * 8;
        const int col = kk * 16 + ((lane >> 3) & 1) * 8;
        ldmatrix_x4(kb4, smem_addr(&sk[key][col]));
        mma16816(s[2 * np], qa[kk], kb4[0], kb4[1]);
        mma16816(s[2 * np + 1], qa[kk], kb4[2], kb4[3]);
      }
    }

    __syncthreads();  // every warp is done with sk: the next tile's K may land there
    if (j0 + BLOCK_N < m) stage_tile<D>(sk, kb, j0 + BLOCK_N, m, kv_row, tid);
    cp_async_commit();

    // Online softmax. Each row is spread over the 4 threads of a group: reduce with shuffles.
    float tile_lo = NEG_INF, tile_hi = NEG_INF;
#pragma unroll
    for (int nt = 0; nt < BLOCK_N / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const u32 key = j0 + nt * 8 + 2 * t + (e & 1);
        s[nt][e] = key < m ? s[nt][e] * scale_log2 : NEG_INF;
      }
      tile_lo = fmaxf(tile_lo, fmaxf(s[nt][0], s[nt][1]));
      tile_hi = fmaxf(tile_hi, fmaxf(s[nt][2], s[nt][3]));
    }
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
      tile_lo = fmaxf(tile_lo, __shfl_xor_sync(0xffffffff, tile_lo, off));
      tile_hi = fmaxf(tile_hi, __shfl_xor_sync(0xffffffff, tile_hi, off));
    }
    // Every tile holds at least one real key, so the new maxima are finite.
    const float new_lo = fmaxf(max_lo, tile_lo), new_hi = fmaxf(max_hi, tile_hi);
    const float alpha_lo = exp2_approx(max_lo - new_lo), alpha_hi = exp2_approx(max_hi - new_hi);
    max_lo = new_lo;
    max_hi = new_hi;
    sum_lo *= alpha_lo;
    sum_hi *= alpha_hi;
#pragma unroll
    for (int nt = 0; nt < BLOCK_N / 8; ++nt) {
      s[nt][0] = exp2_approx(s[nt][0] - new_lo);
      s[nt][1] = exp2_approx(s[nt][1] - new_lo);
      s[nt][2] = exp2_approx(s[nt][2] - new_hi);
      s[nt][3] = exp2_approx(s[nt][3] - new_hi);
      sum_lo += s[nt][0] + s[nt][1];
      sum_hi += s[nt][2] + s[nt][3];
    }
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      o[i][0] *= alpha_lo;
      o[i][1] *= alpha_lo;
      o[i][2] *= alpha_hi;
      o[i][3] *= alpha_hi;
    }

    cp_async_wait<1>();  // V of this tile (the next K may still be in flight)
    __syncthreads();

    // O += P V, 16 keys at a time; P's A fragments are S's accumulators of two key tiles.
#pragma unroll
    for (int kk = 0; kk < BLOCK_N / 16; ++kk) {
      const u32 pa[4] = {pack_f16x2(s[2 * kk][0], s[2 * kk][1]),
                         pack_f16x2(s[2 * kk][2], s[2 * kk][3]),
                         pack_f16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                         pack_f16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        u32 vb4[4];
        const int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int col = dp * 16 + (lane >> 4) * 8;
        ldmatrix_x4_trans(vb4, smem_addr(&sv[key][col]));
        mma16816(o[2 * dp], pa, vb4[0], vb4[1]);
        mma16816(o[2 * dp + 1], pa, vb4[2], vb4[3]);
      }
    }
    __syncthreads();  // the next tile's V overwrites sv
  }
  cp_async_wait<0>();  // nothing may be in flight when the block exits

#pragma unroll
  for (int off = 1; off < 4; off <<= 1) {
    sum_lo += __shfl_xor_sync(0xffffffff, sum_lo, off);
    sum_hi += __shfl_xor_sync(0xffffffff, sum_hi, off);
  }
  const float inv_lo = 1.f / sum_lo, inv_hi = 1.f / sum_hi;
  const u32 r_lo = row0 + g, r_hi = row0 + g + 8;
  u32 *out_lo = reinterpret_cast<u32 *>(out + ((u64)b * n + r_lo) * heads * D + h * D);
  u32 *out_hi = reinterpret_cast<u32 *>(out + ((u64)b * n + r_hi) * heads * D + h * D);
#pragma unroll
  for (int i = 0; i < D / 8; ++i) {
    if (r_lo < n) out_lo[i * 4 + t] = pack_f16x2(o[i][0] * inv_lo, o[i][1] * inv_lo);
    if (r_hi < n) out_hi[i * 4 + t] = pack_f16x2(o[i][2] * inv_hi, o[i][3] * inv_hi);
  }
}

#define FLASH_ATTENTION(D)                                                                     \
  extern "C" __global__ void __launch_bounds__(WARPS * 32) flash_attention_f16_d##D(         \
      const half_t *q, const half_t *kv, half_t *out, u32 n, u32 m, u32 q_row, u32 q_head,     \
      u32 q_off, u32 kv_row, u32 kv_head, u32 k_off, u32 v_off, float scale_log2) {           \
    flash_attention<D>(q, kv, out, n, m, q_row, q_head, q_off, kv_row, kv_head, k_off, v_off, \
                       scale_log2);                                                            \
  }

FLASH_ATTENTION(16)
FLASH_ATTENTION(32)
FLASH_ATTENTION(64)
FLASH_ATTENTION(128)
