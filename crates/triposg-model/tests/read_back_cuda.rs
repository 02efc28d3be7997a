//! Read-back of decode batches on CUDA: each batch's values come back right while later work is
//! already queued on the device, for the batch sizes an octree makes (full batches, a level's
//! shorter last batch, full ones again). Runs only in CUDA builds on a machine with a GPU.
#![cfg(feature = "cuda")]

use candle_core::{DType, Device, Tensor};
use triposg_model::read_back::ReadBack;

/// Values of batch `i`, exact in f16 (multiples of 1/64 below 16 in magnitude), different for
/// every batch and point.
fn batch_values(i: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|j| ((i * 7919 + j * 13) % 2048) as f32 / 64.0 - 16.0)
        .collect()
}

#[test]
fn batches_read_back_while_later_work_is_queued() {
    let dev = Device::new_cuda(0).expect("this test needs a CUDA GPU");
    // Queued behind each batch, so that it is still running when the batch before is read.
    let a = Tensor::randn(0f32, 1.0, (2048, 2048), &dev)
        .unwrap()
        .to_dtype(DType::F16)
        .unwrap();
    let mut read_back = ReadBack::new();
    let sizes = [32_768, 32_768, 23_318, 32_768, 1, 32_768, 7];
    let mut in_flight = None;
    let mut busy = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let x = Tensor::from_vec(batch_values(i, n), (1, n, 1), &dev)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        // The decoder's output is f16 of shape [1, n, 1]; 2x - 1 stays exact.
        let y = ((x * 2.0).unwrap() - 1.0).unwrap();
        let pending = read_back.start(&y).unwrap();
        busy.push(a.matmul(&a).unwrap().matmul(&a).unwrap());
        if let Some((j, n, previous)) = in_flight.replace((i, n, pending)) {
            let expected: Vec<f32> = batch_values(j, n).iter().map(|v| 2.0 * v - 1.0).collect();
            let got = previous.wait().unwrap();
            assert_eq!(got, expected, "batch {j} of {n} points");
        }
    }
    let (j, n, last) = in_flight.unwrap();
    let expected: Vec<f32> = batch_values(j, n).iter().map(|v| 2.0 * v - 1.0).collect();
    assert_eq!(last.wait().unwrap(), expected);

    // A read-back dropped unwaited (a failed decode) leaves the device usable and the queued
    // work right.
    let x = Tensor::from_vec(batch_values(99, 1000), (1000,), &dev).unwrap();
    drop(read_back.start(&x).unwrap());
    let reference = a
        .to_dtype(DType::F32)
        .unwrap()
        .matmul(&a.to_dtype(DType::F32).unwrap())
        .unwrap();
    let square = a.matmul(&a).unwrap().to_dtype(DType::F32).unwrap();
    let max_abs = |t: &Tensor| {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let (err, scale) = (
        max_abs(&(square - &reference).unwrap()),
        max_abs(&reference),
    );
    assert!(
        err < 1e-2 * scale,
        "matmul after the dropped read-back: {err} of {scale}"
    );
    for (i, product) in busy.iter().enumerate() {
        let values = read_back.start(product).unwrap().wait().unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "product {i}");
    }
}
