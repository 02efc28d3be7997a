//! Reading a batch's values back to the host while the device already works on the next batch.
//!
//! `Tensor::to_vec1` copies on the device's stream and waits for the whole stream, so work
//! queued behind the batch (the next batch of a decode) is waited for too, and the GPU idles
//! while the host takes the values and prepares more. [`ReadBack::start`] only marks the point
//! in the stream where the values are complete; [`Pending::wait`] copies them on a stream of its
//! own once that point is reached, and the device stream goes on with whatever was queued after.
//!
//! cudarc's own second streams switch the whole context to per-allocation event tracking (two
//! more driver calls per kernel argument for the rest of the process), so the side stream and
//! the event are raw driver objects that only this module touches.

use candle_core::{DType, Tensor};

use crate::error::Result;

/// Starts read-backs on one device; on CUDA it holds the side stream the copies run on.
#[derive(Default)]
pub struct ReadBack {
    #[cfg(feature = "cuda")]
    side: Option<std::sync::Arc<cuda::SideStream>>,
}

/// Values on their way to the host.
pub struct Pending(Inner);

enum Inner {
    Ready(Vec<f32>),
    #[cfg(feature = "cuda")]
    Queued(cuda::Queued),
}

impl ReadBack {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts reading `values` (any shape and dtype) back as f32. On CUDA this returns at once;
    /// elsewhere the values are read here.
    ///
    /// Call it on the thread that computed `values`: candle's CUDA stream is the calling
    /// thread's per-thread default stream, and the mark is put on that stream.
    pub fn start(&mut self, values: &Tensor) -> Result<Pending> {
        let flat = values.to_dtype(DType::F32)?.flatten_all()?.contiguous()?;
        #[cfg(feature = "cuda")]
        if let candle_core::Device::Cuda(device) = flat.device() {
            let side = cuda::SideStream::for_device(&mut self.side, device)?;
            return Ok(Pending(Inner::Queued(cuda::Queued::new(flat, side)?)));
        }
        Ok(Pending(Inner::Ready(flat.to_vec1()?)))
    }
}

impl Pending {
    /// The values, once the device has computed them.
    pub fn wait(self) -> Result<Vec<f32>> {
        match self.0 {
            Inner::Ready(values) => Ok(values),
            #[cfg(feature = "cuda")]
            Inner::Queued(queued) => Ok(queued.wait()?),
        }
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use std::sync::Arc;

    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{
        result, sys, CudaContext, DevicePtr, DeviceSlice,
    };
    use candle_core::cuda_backend::{CudaDevice, WrapErr};
    use candle_core::{Result, Storage, Tensor};

    /// A non-blocking stream: it never waits for the device stream's later work.
    pub(super) struct SideStream {
        stream: sys::CUstream,
        context: Arc<CudaContext>,
    }

    // SAFETY: a CUstream may be used from any thread of its context; the context is bound
    // before every use.
    unsafe impl Send for SideStream {}
    unsafe impl Sync for SideStream {}

    impl SideStream {
        /// `slot`'s stream if it belongs to `device`'s context, else a new one put there.
        pub(super) fn for_device(
            slot: &mut Option<Arc<Self>>,
            device: &CudaDevice,
        ) -> Result<Arc<Self>> {
            let context = device.cuda_stream().context().clone();
            match slot {
                Some(side) if Arc::ptr_eq(&side.context, &context) => Ok(side.clone()),
                _ => {
                    context.bind_to_thread().w()?;
                    let stream =
                        result::stream::create(result::stream::StreamKind::NonBlocking).w()?;
                    let side = Arc::new(Self { stream, context });
                    *slot = Some(side.clone());
                    Ok(side)
                }
            }
        }
    }

    impl Drop for SideStream {
        fn drop(&mut self) {
            // SAFETY: the stream was made by `for_device` and nothing else holds it; a stream
            // destroyed with work pending finishes that work first.
            unsafe {
                let _ = self.context.bind_to_thread();
                let _ = result::stream::destroy(self.stream);
            }
        }
    }

    /// A contiguous f32 tensor on the device and the event behind the work that computes it.
    pub(super) struct Queued {
        values: Tensor,
        computed: sys::CUevent,
        side: Arc<SideStream>,
    }

    impl Queued {
        /// Marks where the device stream finishes `values` (contiguous f32 on `side`'s device).
        pub(super) fn new(values: Tensor, side: Arc<SideStream>) -> Result<Self> {
            let device_stream = match &*values.storage_and_layout().0 {
                Storage::Cuda(storage) => storage.device().cuda_stream(),
                _ => candle_core::bail!("read-back of a CUDA tensor got another device"),
            };
            side.context.bind_to_thread().w()?;
            let computed =
                result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING).w()?;
            let queued = Self {
                values,
                computed,
                side,
            };
            // SAFETY: both handles are live; the event records the calling thread's device
            // stream (candle's is the per-thread default stream), where `values` was computed.
            unsafe { result::event::record(queued.computed, device_stream.cu_stream()) }.w()?;
            Ok(queued)
        }

        pub(super) fn wait(self) -> Result<Vec<f32>> {
            let (storage, layout) = self.values.storage_and_layout();
            let Storage::Cuda(storage) = &*storage else {
                candle_core::bail!("read-back of a CUDA tensor got another device");
            };
            let start = layout.start_offset();
            let len = layout.shape().elem_count();
            let slice = storage.as_cuda_slice::<f32>()?.slice(start..start + len);
            let mut host = vec![0f32; len];
            self.side.context.bind_to_thread().w()?;
            let (source, _guard) = slice.device_ptr(slice.stream());
            // SAFETY: the side stream waits for the event behind the kernels that write
            // `values`; `host` has exactly `len` elements, the copy's size; a copy into
            // pageable memory blocks the host until it is done (so until the event is
            // reached), and the synchronize covers the rest; `values` (which owns the source)
            // lives until this function returns.
            unsafe {
                result::stream::wait_event(
                    self.side.stream,
                    self.computed,
                    sys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT,
                )
                .w()?;
                result::memcpy_dtoh_async(&mut host, source, self.side.stream).w()?;
                result::stream::synchronize(self.side.stream).w()?;
            }
            Ok(host)
        }
    }

    impl Drop for Queued {
        fn drop(&mut self) {
            // SAFETY: the event is ours; one destroyed before it completes is released by the
            // driver once it does. An unwaited `values` is freed on the device stream, after
            // the kernels that write it.
            unsafe {
                let _ = self.side.context.bind_to_thread();
                let _ = result::event::destroy(self.computed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use super::ReadBack;

    #[test]
    fn values_come_back_as_f32_in_order() {
        let values: Vec<f32> = (0..300).map(|i| i as f32 / 8.0 - 10.0).collect();
        let tensor = Tensor::from_vec(values.clone(), (1, 300, 1), &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        let mut read_back = ReadBack::new();
        let first = read_back.start(&tensor).unwrap();
        let second = read_back
            .start(&tensor.narrow(1, 100, 50).unwrap())
            .unwrap();
        assert_eq!(second.wait().unwrap(), values[100..150]);
        assert_eq!(first.wait().unwrap(), values);
    }
}
