// Flash attention (the FlashAttention-2 scheme) for the f16 path on sm_80 and newer: scores
// never leave registers. Each warp owns 32 query rows (two m16 tiles, so every K and V fragment
// read from shared memory feeds two MMAs) and walks the keys 32 at a time: S = Q K^T on tensor
// cores (mma.sync m16n8k16, f32 accumulation), an online softmax in registers (running row max
// and sum, the output rescaled when the max grows), then O += P V with P converted to f16 in
// place: the accumulator layout of S is the operand layout P needs, so nothing is shuffled.
// Q, K and V tiles are staged in shared memory with cp.async (V of a tile arriving while its S
// is computed, K of the next while this one's softmax and P V run) and read with ldmatrix.
// The kernel is limited by instruction issue more than by the tensor cores (two warps per
// scheduler at 255 registers), so the loop keeps non-MMA work down: key masking only in the
// last, partial tile; the softmax scale folded into the exponent's FMA; each thread's copy
// addresses computed once; and the output rescaled only when a row's maximum grows by more than
// RESCALE_MARGIN (the FlashAttention-4 trick): until then the stale maximum is kept, so
// exponentials stay <= 2^RESCALE_MARGIN, exact in f16 and in the f32 sums, and the 128
// multiplications of the output accumulators are skipped for most tiles.
// Tiles are stored with their 16-byte chunks XOR-swizzled by row, so the 8 rows an ldmatrix
// reads fall on different banks without padding: with 4 warps and head dim 128, Q, K and V
// fill exactly the 48 KiB of static shared memory, and two blocks fit on an SM of a consumer
// card (100 KiB) as on a data-centre one.
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

constexpr int ROWS_PER_WARP = 32;  // query rows per warp: two m16 MMA tiles
constexpr int BLOCK_N = 32;        // keys per tile
// Base-2 growth of a row's maximum tolerated before the output is rescaled.
constexpr float RESCALE_MARGIN = 8.f;

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

// The 16-byte chunk `chunk` of row `r` of a tile sits at chunk `chunk ^ (r mod 8)` of that row,
// so ldmatrix's 8 rows hit 8 bank groups at head dims 64 and 128 (under 64, rows have fewer
// chunks than that: the XOR stays within the row, and some conflicts remain).
template <int D>
__device__ __forceinline__ u32 tile_addr(const half_t *tile, int r, int col) {
  constexpr int CH = D / 8 < 8 ? D / 8 : 8;
  return smem_addr(tile + r * D + ((col / 8) ^ (r & (CH - 1))) * 8);
}

// One thread's share of copying ROWS rows of one part (q, k or v, rows `stride` halves apart)
// into a swizzled shared-memory tile: its chunks are rows `tid / CPR + i * RSTEP` at column chunk
// `tid % CPR`, so their shared addresses are computed once, outside the key loop. Chunks RSTEP
// rows apart share the swizzle when RSTEP is a multiple of its period; at head dim 128 with 2
// warps RSTEP is half the period, so odd chunks take the second address.
template <int D, int ROWS, int THREADS>
struct TileCopy {
  static constexpr int CPR = D / 8;  // 16-byte chunks per row
  static constexpr int PERIOD = CPR < 8 ? CPR : 8;
  static constexpr int CHUNKS = ROWS * CPR;
  static constexpr int ITERS = CHUNKS < THREADS ? 1 : CHUNKS / THREADS;
  static constexpr int RSTEP = THREADS / CPR;
  static_assert(THREADS % CPR == 0 && (CHUNKS < THREADS || CHUNKS % THREADS == 0),
                "every thread copies whole chunks of one column");
  static_assert(RSTEP % PERIOD == 0 || 2 * RSTEP == PERIOD || ITERS == 1,
                "the swizzle of a thread's chunks repeats every one or two");
  u32 dst[2];    // shared addresses of the thread's first two chunks
  u32 src_col;   // its column, in halves
  u32 row;       // its first row within the tile
  bool active;   // whether the thread has chunks (CHUNKS may be under THREADS)

  __device__ __forceinline__ TileCopy(const half_t *tile, int tid) {
    row = tid / CPR;
    src_col = (tid % CPR) * 8;
    active = tid < CHUNKS;
    dst[0] = tile_addr<D>(tile, row, src_col);
    dst[1] = tile_addr<D>(tile, row + RSTEP, src_col);
  }

  // Rows r0 + row + i * RSTEP of `src`, asynchronously; with CHECK, rows from `limit` on read
  // as zeros (the last, partial tile).
  template <bool CHECK>
  __device__ __forceinline__ void copy(const half_t *src, u32 r0, u32 limit, u32 stride) const {
    if (!active) return;
    const half_t *from = src + (u64)(r0 + row) * stride + src_col;
#pragma unroll
    for (int i = 0; i < ITERS; ++i) {
      const bool odd = RSTEP % PERIOD != 0 && (i & 1);
      const u32 to = dst[odd] + (i - odd) * RSTEP * D * 2;
      if (CHECK) {
        const bool in = r0 + row + i * RSTEP < limit;
        cp_async16(to, in ? from + (u64)i * RSTEP * stride : src, in ? 16 : 0);
      } else {
        cp_async16(to, from + (u64)i * RSTEP * stride, 16);
      }
    }
  }

  __device__ __forceinline__ void copy(const half_t *src, u32 r0, u32 limit, u32 stride,
                                       bool partial) const {
    if (partial) copy<true>(src, r0, limit, stride);
    else copy<false>(src, r0, limit, stride);
  }
};

// Grid (ceil(n / (32 * WARPS)), heads, batch), WARPS * 32 threads. `scale_log2` is the softmax
// scale times log2(e): scores are kept in base 2 so one ex2 per score does the exponential.
template <int D, int WARPS>
__device__ __forceinline__ void flash_attention(const half_t *__restrict__ q,
                                                const half_t *__restrict__ kv,
                                                half_t *__restrict__ out, u32 n, u32 m,
                                                u32 q_row, u32 q_head, u32 q_off, u32 kv_row,
                                                u32 kv_head, u32 k_off, u32 v_off,
                                                float scale_log2) {
  static_assert(D % 16 == 0 && D <= 128 && (D & (D - 1)) == 0,
                "head dim must be 16, 32, 64 or 128 (the swizzle needs a power of two)");
  constexpr int THREADS = WARPS * 32, BLOCK_M = ROWS_PER_WARP * WARPS, MT = ROWS_PER_WARP / 16;
  __shared__ __align__(128) half_t sq[BLOCK_M * D];
  __shared__ __align__(128) half_t sk[BLOCK_N * D];
  __shared__ __align__(128) half_t sv[BLOCK_N * D];

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane >> 2, t = lane & 3;  // mma fragment row group and column pair
  const u32 heads = gridDim.y, h = blockIdx.y, b = blockIdx.z;
  const u32 q0 = blockIdx.x * BLOCK_M;
  const int wrow = warp * ROWS_PER_WARP;  // this warp's first row within the block
  const half_t *qb = q + (u64)b * n * q_row + h * q_head + q_off;
  const half_t *kb = kv + (u64)b * m * kv_row + h * kv_head + k_off;
  const half_t *vb = kv + (u64)b * m * kv_row + h * kv_head + v_off;

  const TileCopy<D, BLOCK_M, THREADS> copy_q(sq, tid);
  const TileCopy<D, BLOCK_N, THREADS> copy_k(sk, tid), copy_v(sv, tid);
  // Keys from `full_to` on fall in the last tile, which is partial unless m is a multiple of it.
  const u32 full_to = m - m % BLOCK_N;

  // Every iteration commits two copy groups (one may be empty), so the waits always count the
  // same: V of this tile, then K of the next. Q arrives with the first K.
  copy_q.copy(qb, q0, n, q_row, q0 + BLOCK_M > n);
  copy_k.copy(kb, 0, m, kv_row, full_to == 0);
  cp_async_commit();

  float o[MT][D / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < D / 8; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
  // Running row maxima (base-2 scores, possibly stale by up to RESCALE_MARGIN) and this
  // thread's share of the row sums, for rows g ([0]) and g + 8 ([1]) of each m16 tile.
  float row_max[MT][2], row_sum[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    row_max[mt][0] = row_max[mt][1] = NEG_INF;
    row_sum[mt][0] = row_sum[mt][1] = 0.f;
  }

  for (u32 j0 = 0; j0 < m; j0 += BLOCK_N) {
    const bool partial = j0 >= full_to;
    copy_v.copy(vb, j0, m, kv_row, partial);
    cp_async_commit();
    cp_async_wait<1>();  // K of this tile (and Q)
    __syncthreads();

    // S = Q K^T: per 16 columns of the head, each warp's two Q fragments against 2 x 2 key
    // tiles of 8 (ldmatrix reads two key tiles' B fragments at a time).
    float s[MT][BLOCK_N / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < BLOCK_N / 8; ++i) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      u32 qa[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
        ldmatrix_x4(qa[mt], tile_addr<D>(sq, wrow + mt * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8));
#pragma unroll
      for (int np = 0; np < BLOCK_N / 16; ++np) {
        u32 kb4[4];
        const int key = np * 16 + (lane & 7) + (lane >> 4) * 8;
        const int col = kk * 16 + ((lane >> 3) & 1) * 8;
        ldmatrix_x4(kb4, tile_addr<D>(sk, key, col));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816(s[mt][2 * np], qa[mt], kb4[0], kb4[1]);
          mma16816(s[mt][2 * np + 1], qa[mt], kb4[2], kb4[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with sk: the next tile's K may land there
    if (j0 + BLOCK_N < m) copy_k.copy(kb, j0 + BLOCK_N, m, kv_row, j0 + BLOCK_N >= full_to);
    cp_async_commit();

    // Keys past the end (zeros in shared memory) must not count.
    if (partial) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < BLOCK_N / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (j0 + nt * 8 + 2 * t + (e & 1) >= m) s[mt][nt][e] = NEG_INF;
    }

    // Online softmax. Each row is spread over the 4 threads of a group: reduce with shuffles.
    // Tile maxima in base 2 (the scale is positive, so it commutes with the maximum).
    float tile_max[MT][2];
    bool grow = false;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      float lo = NEG_INF, hi = NEG_INF;
#pragma unroll
      for (int nt = 0; nt < BLOCK_N / 8; ++nt) {
        lo = fmaxf(lo, fmaxf(s[mt][nt][0], s[mt][nt][1]));
        hi = fmaxf(hi, fmaxf(s[mt][nt][2], s[mt][nt][3]));
      }
#pragma unroll
      for (int off = 1; off < 4; off <<= 1) {
        lo = fmaxf(lo, __shfl_xor_sync(0xffffffff, lo, off));
        hi = fmaxf(hi, __shfl_xor_sync(0xffffffff, hi, off));
      }
      tile_max[mt][0] = lo * scale_log2;
      tile_max[mt][1] = hi * scale_log2;
      // The first tile always grows (from minus infinity: every tile holds a real key).
      grow |= tile_max[mt][0] > row_max[mt][0] + RESCALE_MARGIN ||
              tile_max[mt][1] > row_max[mt][1] + RESCALE_MARGIN;
    }
    // Warp-uniform, so the multiplications are skipped for the whole warp or done by all.
    if (__any_sync(0xffffffff, grow)) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const float new_lo = fmaxf(row_max[mt][0], tile_max[mt][0]);
        const float new_hi = fmaxf(row_max[mt][1], tile_max[mt][1]);
        const float alpha_lo = exp2_approx(row_max[mt][0] - new_lo);
        const float alpha_hi = exp2_approx(row_max[mt][1] - new_hi);
        row_max[mt][0] = new_lo;
        row_max[mt][1] = new_hi;
        row_sum[mt][0] *= alpha_lo;
        row_sum[mt][1] *= alpha_hi;
#pragma unroll
        for (int i = 0; i < D / 8; ++i) {
          o[mt][i][0] *= alpha_lo;
          o[mt][i][1] *= alpha_lo;
          o[mt][i][2] *= alpha_hi;
          o[mt][i][3] *= alpha_hi;
        }
      }
    }
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      const float lo = row_max[mt][0], hi = row_max[mt][1];
#pragma unroll
      for (int nt = 0; nt < BLOCK_N / 8; ++nt) {
        s[mt][nt][0] = exp2_approx(fmaf(s[mt][nt][0], scale_log2, -lo));
        s[mt][nt][1] = exp2_approx(fmaf(s[mt][nt][1], scale_log2, -lo));
        s[mt][nt][2] = exp2_approx(fmaf(s[mt][nt][2], scale_log2, -hi));
        s[mt][nt][3] = exp2_approx(fmaf(s[mt][nt][3], scale_log2, -hi));
        row_sum[mt][0] += s[mt][nt][0] + s[mt][nt][1];
        row_sum[mt][1] += s[mt][nt][2] + s[mt][nt][3];
      }
    }

    cp_async_wait<1>();  // V of this tile (the next K may still be in flight)
    __syncthreads();

    // O += P V, 16 keys at a time; P's A fragments are S's accumulators of two key tiles.
#pragma unroll
    for (int kk = 0; kk < BLOCK_N / 16; ++kk) {
      u32 pa[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        pa[mt][0] = pack_f16x2(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        pa[mt][1] = pack_f16x2(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        pa[mt][2] = pack_f16x2(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        pa[mt][3] = pack_f16x2(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        u32 vb4[4];
        const int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int col = dp * 16 + (lane >> 4) * 8;
        ldmatrix_x4_trans(vb4, tile_addr<D>(sv, key, col));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816(o[mt][2 * dp], pa[mt], vb4[0], vb4[1]);
          mma16816(o[mt][2 * dp + 1], pa[mt], vb4[2], vb4[3]);
        }
      }
    }
    __syncthreads();  // the next tile's V overwrites sv
  }
  cp_async_wait<0>();  // nothing may be in flight when the block exits

#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    float sum_lo = row_sum[mt][0], sum_hi = row_sum[mt][1];
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
      sum_lo += __shfl_xor_sync(0xffffffff, sum_lo, off);
      sum_hi += __shfl_xor_sync(0xffffffff, sum_hi, off);
    }
    const float inv_lo = 1.f / sum_lo, inv_hi = 1.f / sum_hi;
    const u32 r_lo = q0 + wrow + mt * 16 + g, r_hi = r_lo + 8;
    u32 *out_lo = reinterpret_cast<u32 *>(out + ((u64)b * n + r_lo) * heads * D + h * D);
    u32 *out_hi = reinterpret_cast<u32 *>(out + ((u64)b * n + r_hi) * heads * D + h * D);
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      if (r_lo < n) out_lo[i * 4 + t] = pack_f16x2(o[mt][i][0] * inv_lo, o[mt][i][1] * inv_lo);
      if (r_hi < n) out_hi[i * 4 + t] = pack_f16x2(o[mt][i][2] * inv_hi, o[mt][i][3] * inv_hi);
    }
  }
}

// `flash_attention_f16_d<D>_w<WARPS>`: 32 * WARPS query rows per block.
#define FLASH_ATTENTION(D, WARPS)                                                              \
  extern "C" __global__ void __launch_bounds__(WARPS * 32) flash_attention_f16_d##D##_w##WARPS( \
      const half_t *q, const half_t *kv, half_t *out, u32 n, u32 m, u32 q_row, u32 q_head,     \
      u32 q_off, u32 kv_row, u32 kv_head, u32 k_off, u32 v_off, float scale_log2) {           \
    flash_attention<D, WARPS>(q, kv, out, n, m, q_row, q_head, q_off, kv_row, kv_head, k_off,  \
                              v_off, scale_log2);                                             \
  }

FLASH_ATTENTION(16, 2)
FLASH_ATTENTION(32, 2)
FLASH_ATTENTION(64, 2)
FLASH_ATTENTION(128, 2)
FLASH_ATTENTION(16, 4)
FLASH_ATTENTION(32, 4)
FLASH_ATTENTION(64, 4)
FLASH_ATTENTION(128, 4)
