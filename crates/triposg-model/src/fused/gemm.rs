//! Linear layers as cuBLASLt calls with the epilogue inside the GEMM: `xs . w^T + bias`, and a
//! residual read as the GEMM's C operand (`beta = 1`). The output is then written once, where a
//! plain GEMM writes it and a bias (+ residual) pass reads and rewrites it; candle's matmul goes
//! through cuBLAS, which has no epilogues. The DiT's skip fusion, `linear(cat([skip, xs]))`,
//! becomes two GEMMs over the two halves of the weight, the second accumulating onto the first,
//! with no concatenated copy.
//!
//! Row-major `ys [rows, n] = xs [rows, k] . w [n, k]^T` is, in cuBLAS's column-major terms,
//! `ys^T [n, rows] = op(w^T) . xs^T`: A = w read transposed (ld = its row stride), B = xs,
//! C = D = ys^T, and the bias is added per row of D (per output feature).

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Mutex, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cublaslt::{result as lt, sys};
use candle_core::cuda_backend::cudarc::driver::sys::CUdeviceptr;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, DevicePtr, DevicePtrMut};
use candle_core::cuda_backend::{CudaDevice, DeviceId};
use candle_core::{
    bail, CpuStorage, CudaStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Storage, Tensor, D,
};
use half::f16;

/// Byte alignment every operand must have; the heuristic is told so, and picks kernels that
/// need no more (16-byte vector loads).
const ALIGN: usize = 16;

/// Plans kept per device before they are all dropped and remade on use.
const MAX_PLANS: usize = 256;

/// What a planned GEMM looks like; descriptors and the chosen algorithm depend on nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PlanKey {
    n: usize,
    rows: usize,
    k: usize,
    lda: usize,
    bias: bool,
    accumulate: bool,
}

/// Descriptors and algorithm of one GEMM shape, made once: creating them and running the
/// heuristic costs more host time than launching the kernel.
struct Plan {
    desc: sys::cublasLtMatmulDesc_t,
    a: sys::cublasLtMatrixLayout_t,
    b: sys::cublasLtMatrixLayout_t,
    d: sys::cublasLtMatrixLayout_t,
    algo: sys::cublasLtMatmulAlgo_t,
}

/// One cuBLASLt handle and workspace per device, with its plans. Lives as long as the process,
/// like candle's own cuBLAS handle.
struct Lt {
    handle: sys::cublasLtHandle_t,
    workspace: CudaSlice<u8>,
    plans: HashMap<PlanKey, Option<Plan>>,
}

// SAFETY: the raw handles are only used under the `STATE` mutex, on the device's one stream.
unsafe impl Send for Lt {}

static STATE: OnceLock<Mutex<HashMap<DeviceId, Lt>>> = OnceLock::new();

fn lt_err(e: lt::CublasError) -> candle_core::Error {
    candle_core::Error::Msg(format!("cuBLASLt: {e:?}"))
}

fn set_attr<T>(
    desc: sys::cublasLtMatmulDesc_t,
    attr: sys::cublasLtMatmulDescAttributes_t,
    v: &T,
) -> Result<()> {
    // SAFETY: `v` is a live value of the type the attribute takes.
    unsafe {
        lt::set_matmul_desc_attribute(desc, attr, v as *const T as *const c_void, size_of::<T>())
    }
    .map_err(lt_err)
}

fn set_pref<T>(
    pref: sys::cublasLtMatmulPreference_t,
    attr: sys::cublasLtMatmulPreferenceAttributes_t,
    v: &T,
) -> Result<()> {
    // SAFETY: `v` is a live value of the type the attribute takes.
    unsafe {
        lt::set_matmul_pref_attribute(pref, attr, v as *const T as *const c_void, size_of::<T>())
    }
    .map_err(lt_err)
}

impl Lt {
    fn new(dev: &CudaDevice) -> Result<Self> {
        // cuBLASLt's advice for Hopper is 32 MiB of workspace; 4 MiB for older cards.
        let (major, _) = dev
            .cuda_stream()
            .context()
            .compute_capability()
            .map_err(candle_core::Error::wrap)?;
        let size = if major >= 9 { 32 << 20 } else { 4 << 20 };
        Ok(Self {
            handle: lt::create_handle().map_err(lt_err)?,
            workspace: dev.alloc_zeros::<u8>(size)?,
            plans: HashMap::new(),
        })
    }

    /// The plan for `key`, made on first use; `None` (remembered) where cuBLASLt has no
    /// algorithm for it, and the caller takes candle's GEMM instead.
    fn plan(&mut self, key: PlanKey) -> Option<&Plan> {
        if !self.plans.contains_key(&key) {
            // Decoding makes a new row count at the end of every octree level, so a long-lived
            // server would collect plans without end; remaking the few in use costs
            // milliseconds.
            if self.plans.len() >= MAX_PLANS {
                self.plans.clear();
            }
            let plan = self.make_plan(key);
            if let Err(e) = &plan {
                // Slower, not wrong: worth a line when tuning, not a warning to every job.
                tracing::debug!("cuBLASLt has no GEMM for {key:?} ({e}); using cuBLAS for it");
            }
            self.plans.insert(key, plan.ok());
        }
        self.plans[&key].as_ref()
    }

    fn make_plan(&self, key: PlanKey) -> Result<Plan> {
        use sys::cublasLtMatmulDescAttributes_t as Attr;
        use sys::cublasLtMatmulPreferenceAttributes_t as Pref;
        let f16_t = sys::cudaDataType_t::CUDA_R_16F;
        let layout = |rows: usize, cols: usize, ld: usize| {
            lt::create_matrix_layout(f16_t, rows as u64, cols as u64, ld as i64).map_err(lt_err)
        };
        let mut plan = Plan {
            desc: lt::create_matmul_desc(
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                sys::cudaDataType_t::CUDA_R_32F,
            )
            .map_err(lt_err)?,
            a: std::ptr::null_mut(),
            b: std::ptr::null_mut(),
            d: std::ptr::null_mut(),
            // SAFETY: an opaque array of integers, overwritten by the heuristic's choice below.
            algo: unsafe { std::mem::zeroed() },
        };
        plan.a = layout(key.k, key.n, key.lda)?;
        plan.b = layout(key.k, key.rows, key.k)?;
        plan.d = layout(key.n, key.rows, key.n)?;
        let desc = plan.desc;
        // cublasOperation_t: 1 transposes (A, the weight), 0 does not (B, the input).
        set_attr(desc, Attr::CUBLASLT_MATMUL_DESC_TRANSA, &1i32)?;
        set_attr(desc, Attr::CUBLASLT_MATMUL_DESC_TRANSB, &0i32)?;
        let epilogue = if key.bias {
            set_attr(desc, Attr::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &f16_t)?;
            sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS
        } else {
            sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_DEFAULT
        };
        set_attr(desc, Attr::CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue)?;
        let pref = lt::create_matmul_pref().map_err(lt_err)?;
        // cuBLASLt's table: the workspace size is a u64, alignments are u32s.
        let heuristic = (|| {
            set_pref(
                pref,
                Pref::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                &(self.workspace.len() as u64),
            )?;
            for attr in [
                Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
            ] {
                set_pref(pref, attr, &(ALIGN as u32))?;
            }
            // SAFETY: all descriptors were created above and are alive.
            unsafe {
                lt::get_matmul_algo_heuristic(
                    self.handle,
                    desc,
                    plan.a,
                    plan.b,
                    plan.d,
                    plan.d,
                    pref,
                )
            }
            .map_err(lt_err)
        })();
        // SAFETY: created above, not used after.
        unsafe { lt::destroy_matmul_pref(pref) }.map_err(lt_err)?;
        plan.algo = heuristic?.algo;
        Ok(plan)
    }

    /// `d = xs . w^T (+ bias) (+ c if accumulating)`.
    fn gemm(&mut self, dev: &CudaDevice, g: &Gemm) -> Result<()> {
        let key = g.key;
        let handle = self.handle;
        let Some(plan) = self.plan(key) else {
            bail!("cuBLASLt has no GEMM for {key:?}");
        };
        let (desc, algo, (a, b, d)) = (plan.desc, plan.algo, (plan.a, plan.b, plan.d));
        if let Some(bias) = g.bias {
            set_attr(
                desc,
                sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                &bias,
            )?;
        }
        let stream = dev.cuda_stream();
        let workspace_len = self.workspace.len();
        let (workspace, _ws) = self.workspace.device_ptr_mut(&stream);
        let (alpha, beta) = (1f32, if key.accumulate { 1f32 } else { 0f32 });
        // SAFETY: the caller checked that w, xs, c and d hold the shapes of `key` at these
        // addresses, and keeps their allocations alive until the kernel has run on `stream`.
        unsafe {
            lt::matmul(
                handle,
                desc,
                &alpha as *const f32 as *const c_void,
                &beta as *const f32 as *const c_void,
                g.w as *const c_void,
                a,
                g.xs as *const c_void,
                b,
                g.c as *const c_void,
                d,
                g.d as *mut c_void,
                d,
                &algo,
                workspace as *mut c_void,
                workspace_len,
                stream.cu_stream() as sys::cudaStream_t,
            )
        }
        .map_err(lt_err)
    }
}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: each was created once by `make_plan` (null where it failed first) and is
        // destroyed once here.
        unsafe {
            for layout in [self.a, self.b, self.d] {
                if !layout.is_null() {
                    let _ = lt::destroy_matrix_layout(layout);
                }
            }
            let _ = lt::destroy_matmul_desc(self.desc);
        }
    }
}

/// One GEMM's device addresses (each at its first element) and shape; C is read where
/// `key.accumulate` says so, D is written.
struct Gemm {
    key: PlanKey,
    w: CUdeviceptr,
    xs: CUdeviceptr,
    c: CUdeviceptr,
    d: CUdeviceptr,
    bias: Option<CUdeviceptr>,
}

fn with_lt<T>(dev: &CudaDevice, f: impl FnOnce(&mut Lt) -> Result<T>) -> Result<T> {
    // cuBLASLt picks algorithms for the current device: make it this one (several cards serve
    // one queue from different threads).
    dev.cuda_stream()
        .context()
        .bind_to_thread()
        .map_err(candle_core::Error::wrap)?;
    let mut state = STATE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let lt = match state.entry(dev.id()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(Lt::new(dev)?),
    };
    f(lt)
}

/// Whether an operand starts 16-byte aligned (allocations do; views may not).
fn aligned(t: &Tensor) -> bool {
    t.is_contiguous() && t.layout().start_offset().is_multiple_of(ALIGN / 2)
}

/// The GEMM `xs . weight^T` (+ `bias`) would be, if cuBLASLt can run it here: CUDA f16
/// throughout, contiguous, rows and starts 16-byte aligned, and an algorithm found for the
/// shape. `halves` is 2 for the skip fusion (the weight is `[n, 2 k]`).
fn fitting_plan(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    halves: usize,
    accumulate: bool,
) -> Option<PlanKey> {
    let (n, k_w) = weight.dims2().ok()?;
    let k = k_w / halves;
    let fits = super::applies(xs)
        && weight.dtype() == xs.dtype()
        && xs.dim(D::Minus1).is_ok_and(|d| d * halves == k_w)
        && k.is_multiple_of(ALIGN / 2)
        && n.is_multiple_of(ALIGN / 2)
        && aligned(xs)
        && aligned(weight)
        && bias.is_none_or(|b| b.dtype() == xs.dtype() && b.elem_count() == n && aligned(b));
    let key = PlanKey {
        n,
        rows: xs.elem_count() / k.max(1),
        k,
        lda: k_w,
        bias: bias.is_some(),
        accumulate,
    };
    (fits && planned(xs, key)).then_some(key)
}

/// Whether cuBLASLt has an algorithm for `key` on `xs`'s device (planned now if new).
fn planned(xs: &Tensor, key: PlanKey) -> bool {
    let Ok(dev) = xs.device().as_cuda_device() else {
        return false;
    };
    with_lt(dev, |lt| Ok(lt.plan(key).is_some())).unwrap_or(false)
}

/// Whether [`lt_linear`] takes `xs . weight^T + bias (+ residual)`; a residual must have the
/// output's shape.
pub fn linear_applies(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
) -> bool {
    let residual_fits = residual.is_none_or(|r| {
        let (dims, out) = (xs.dims(), r.dims());
        r.dtype() == xs.dtype()
            && !dims.is_empty()
            && out.len() == dims.len()
            && out[..out.len() - 1] == dims[..dims.len() - 1]
            && weight.dims2().is_ok_and(|(n, _)| out.last() == Some(&n))
            && aligned(r)
    });
    residual_fits && fitting_plan(xs, weight, bias, 1, residual.is_some()).is_some()
}

/// Whether [`lt_skip_linear`] takes `cat([skip, xs]) . weight^T + bias`.
pub fn skip_linear_applies(skip: &Tensor, xs: &Tensor, weight: &Tensor, bias: &Tensor) -> bool {
    skip.shape() == xs.shape()
        && skip.dtype() == xs.dtype()
        && aligned(skip)
        && fitting_plan(xs, weight, Some(bias), 2, false).is_some()
        && fitting_plan(xs, weight, None, 2, true).is_some()
}

/// A captured operand's storage (an op's extra tensor, not one of its arguments).
fn captured<'a>(
    t: &'a Tensor,
    what: &str,
    len: usize,
) -> Result<(impl std::ops::Deref<Target = Storage> + 'a, usize)> {
    if !aligned(t) || t.elem_count() != len || t.dtype() != candle_core::DType::F16 {
        bail!("cuBLASLt linear: {what} must be a contiguous aligned f16 tensor of {len} values");
    }
    let (s, l) = t.storage_and_layout();
    if !matches!(&*s, Storage::Cuda(_)) {
        bail!("cuBLASLt linear: {what} is not on the GPU");
    }
    Ok((s, l.start_offset()))
}

/// The f16 values of a captured operand's storage from element `at` on.
fn f16_view(s: &Storage, at: usize) -> Result<CudaView<'_, f16>> {
    match s {
        Storage::Cuda(c) => Ok(c.as_cuda_slice::<f16>()?.slice(at..)),
        _ => bail!("cuBLASLt linear: operand is not on the GPU"),
    }
}

/// `[.., k]` input, `[n, halves * k]` weight -> output shape `[.., n]`, rows, `n` and `k`.
fn output_shape(
    xs_l: &Layout,
    w_l: &Layout,
    halves: usize,
) -> Result<(Shape, usize, usize, usize)> {
    let (n, k_w) = w_l.shape().dims2()?;
    let k = k_w / halves;
    let dims = xs_l.shape().dims();
    if dims.last() != Some(&k) || k * halves != k_w || !xs_l.is_contiguous() || !w_l.is_contiguous()
    {
        bail!("cuBLASLt linear: input {xs_l:?} does not match weight {w_l:?}");
    }
    let mut out = dims.to_vec();
    *out.last_mut().expect("checked above") = n;
    Ok((Shape::from(out), xs_l.shape().elem_count() / k, n, k))
}

/// `xs . w^T + bias (+ residual)` into a fresh tensor, one GEMM.
struct LtLinear {
    bias: Option<Tensor>,
    residual: Option<Tensor>,
}

impl CustomOp2 for LtLinear {
    fn name(&self) -> &'static str {
        "cublaslt-linear"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        bail!("{} runs on CUDA only", self.name())
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xs_l: &Layout,
        w: &CudaStorage,
        w_l: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (shape, rows, n, k) = output_shape(xs_l, w_l, 1)?;
        let dev = xs.device().clone();
        let stream = dev.cuda_stream();
        let bias = self
            .bias
            .as_ref()
            .map(|b| captured(b, "bias", n))
            .transpose()?;
        let residual = self
            .residual
            .as_ref()
            .map(|r| captured(r, "residual", rows * n))
            .transpose()?;
        let xs = xs.as_cuda_slice::<f16>()?.slice(xs_l.start_offset()..);
        let w = w.as_cuda_slice::<f16>()?.slice(w_l.start_offset()..);
        let bias = bias.as_ref().map(|(s, at)| f16_view(s, *at)).transpose()?;
        let residual = residual
            .as_ref()
            .map(|(s, at)| f16_view(s, *at))
            .transpose()?;
        // SAFETY: the GEMM writes every element.
        let mut out = unsafe { dev.alloc::<f16>(rows * n)? };
        {
            let (xs_p, _xs) = xs.device_ptr(&stream);
            let (w_p, _w) = w.device_ptr(&stream);
            let bias_p = bias.as_ref().map(|b| b.device_ptr(&stream));
            let res_p = residual.as_ref().map(|r| r.device_ptr(&stream));
            let (d_p, _d) = out.device_ptr_mut(&stream);
            let gemm = Gemm {
                key: PlanKey {
                    n,
                    rows,
                    k,
                    lda: k,
                    bias: bias_p.is_some(),
                    accumulate: res_p.is_some(),
                },
                w: w_p,
                xs: xs_p,
                c: res_p.as_ref().map_or(d_p, |(p, _)| *p),
                d: d_p,
                bias: bias_p.as_ref().map(|(p, _)| *p),
            };
            with_lt(&dev, |lt| lt.gemm(&dev, &gemm))?;
        }
        Ok((CudaStorage::wrap_cuda_slice(out, dev), shape))
    }
}

/// `cat([skip, xs], -1) . w^T + bias` without the concatenation: `w`'s second half of columns
/// against `xs` (with the bias), then its first half against `skip`, accumulated.
struct LtSkipLinear {
    bias: Tensor,
}

impl CustomOp3 for LtSkipLinear {
    fn name(&self) -> &'static str {
        "cublaslt-skip-linear"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        bail!("{} runs on CUDA only", self.name())
    }

    fn cuda_fwd(
        &self,
        skip: &CudaStorage,
        skip_l: &Layout,
        xs: &CudaStorage,
        xs_l: &Layout,
        w: &CudaStorage,
        w_l: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (shape, rows, n, k) = output_shape(xs_l, w_l, 2)?;
        if skip_l.shape() != xs_l.shape() || !skip_l.is_contiguous() {
            bail!("cuBLASLt skip linear: skip {skip_l:?} does not match input {xs_l:?}");
        }
        let dev = xs.device().clone();
        let stream = dev.cuda_stream();
        let (bias, at) = captured(&self.bias, "bias", n)?;
        let bias = f16_view(&bias, at)?;
        let skip = skip.as_cuda_slice::<f16>()?.slice(skip_l.start_offset()..);
        let xs = xs.as_cuda_slice::<f16>()?.slice(xs_l.start_offset()..);
        let w = w.as_cuda_slice::<f16>()?.slice(w_l.start_offset()..);
        // SAFETY: the first GEMM writes every element.
        let mut out = unsafe { dev.alloc::<f16>(rows * n)? };
        {
            let (skip_p, _s) = skip.device_ptr(&stream);
            let (xs_p, _x) = xs.device_ptr(&stream);
            let (w_p, _w) = w.device_ptr(&stream);
            let (bias_p, _b) = bias.device_ptr(&stream);
            let (d_p, _d) = out.device_ptr_mut(&stream);
            let key = |bias, accumulate| PlanKey {
                n,
                rows,
                k,
                lda: 2 * k,
                bias,
                accumulate,
            };
            let half = (k * size_of::<f16>()) as CUdeviceptr;
            with_lt(&dev, |lt| {
                lt.gemm(
                    &dev,
                    &Gemm {
                        key: key(true, false),
                        w: w_p + half,
                        xs: xs_p,
                        c: d_p,
                        d: d_p,
                        bias: Some(bias_p),
                    },
                )?;
                lt.gemm(
                    &dev,
                    &Gemm {
                        key: key(false, true),
                        w: w_p,
                        xs: skip_p,
                        c: d_p,
                        d: d_p,
                        bias: None,
                    },
                )
            })?;
        }
        Ok((CudaStorage::wrap_cuda_slice(out, dev), shape))
    }
}

/// `xs . weight^T + bias + residual` (bias and residual optional) in one GEMM; the caller
/// checked [`linear_applies`].
pub fn lt_linear(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    xs.apply_op2_no_bwd(
        weight,
        &LtLinear {
            bias: bias.cloned(),
            residual: residual.cloned(),
        },
    )
}

/// `cat([skip, xs], -1) . weight^T + bias` in two GEMMs and no copy; the caller checked
/// [`skip_linear_applies`].
pub fn lt_skip_linear(
    skip: &Tensor,
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
) -> Result<Tensor> {
    skip.apply_op3_no_bwd(xs, weight, &LtSkipLinear { bias: bias.clone() })
}
