//! DINOv2 as Hugging Face `transformers.Dinov2Model` (`image_encoder_dinov2/`): the image
//! condition encoder. Returns `last_hidden_state` (CLS token first, then one token per patch).

use std::sync::Mutex;

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, LayerNorm, VarBuilder};

use crate::layers::Linear;
use serde::Deserialize;

use crate::layers::scaled_dot_product_attention;

#[derive(Debug, Clone, Deserialize)]
pub struct Dinov2Config {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default = "four")]
    pub mlp_ratio: usize,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    pub image_size: usize,
    pub patch_size: usize,
    #[serde(default = "three")]
    pub num_channels: usize,
    #[serde(default = "yes")]
    pub qkv_bias: bool,
    #[serde(default)]
    pub use_swiglu_ffn: bool,
}

fn four() -> usize {
    4
}
fn three() -> usize {
    3
}
fn gelu() -> String {
    "gelu".into()
}
fn eps() -> f64 {
    1e-6
}
fn yes() -> bool {
    true
}

impl Dinov2Config {
    /// `facebook/dinov2-large`, as shipped in TripoSG's `image_encoder_dinov2/`.
    pub fn large() -> Self {
        Self {
            hidden_size: 1024,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            mlp_ratio: 4,
            hidden_act: gelu(),
            layer_norm_eps: 1e-6,
            image_size: 518,
            patch_size: 14,
            num_channels: 3,
            qkv_bias: true,
            use_swiglu_ffn: false,
        }
    }
}

/// One bicubic weight set of PyTorch's `interpolate(mode="bicubic", align_corners=False)`
/// (Keys' kernel with A = -0.75, edge-clamped taps): for output index `dst`, four input
/// indices and their weights.
fn bicubic_taps(dst: usize, in_size: usize, out_size: usize) -> [(usize, f32); 4] {
    const A: f64 = -0.75;
    let scale = in_size as f64 / out_size as f64;
    let src = scale * (dst as f64 + 0.5) - 0.5;
    let base = src.floor();
    let t = src - base;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let weights = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
    let clamp = |i: f64| i.clamp(0.0, (in_size - 1) as f64) as usize;
    std::array::from_fn(|k| (clamp(base - 1.0 + k as f64), weights[k] as f32))
}

/// Bicubic resize of a `[h, w, dim]` grid (row-major, host memory) to `[oh, ow, dim]`.
fn bicubic_resize(
    grid: &[f32],
    (h, w, dim): (usize, usize, usize),
    (oh, ow): (usize, usize),
) -> Vec<f32> {
    let mut out = vec![0f32; oh * ow * dim];
    for oy in 0..oh {
        let rows = bicubic_taps(oy, h, oh);
        for ox in 0..ow {
            let cols = bicubic_taps(ox, w, ow);
            let cell = &mut out[(oy * ow + ox) * dim..][..dim];
            for &(y, wy) in &rows {
                for &(x, wx) in &cols {
                    let weight = wy * wx;
                    let src = &grid[(y * w + x) * dim..][..dim];
                    for (o, s) in cell.iter_mut().zip(src) {
                        *o += weight * s;
                    }
                }
            }
        }
    }
    out
}

#[derive(Debug)]
struct Layer {
    norm1: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    layer_scale1: Tensor,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    layer_scale2: Tensor,
    heads: usize,
}

impl Layer {
    fn new(cfg: &Dinov2Config, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let hidden = d * cfg.mlp_ratio;
        let lin = |i, o, name: &str| crate::layers::linear(i, o, cfg.qkv_bias, vb.pp(name));
        Ok(Self {
            norm1: candle_nn::layer_norm(d, cfg.layer_norm_eps, vb.pp("norm1"))?,
            query: lin(d, d, "attention.attention.query")?,
            key: lin(d, d, "attention.attention.key")?,
            value: lin(d, d, "attention.attention.value")?,
            dense: crate::layers::linear(d, d, true, vb.pp("attention.output.dense"))?,
            layer_scale1: vb.get(d, "layer_scale1.lambda1")?,
            norm2: candle_nn::layer_norm(d, cfg.layer_norm_eps, vb.pp("norm2"))?,
            fc1: crate::layers::linear(d, hidden, true, vb.pp("mlp.fc1"))?,
            fc2: crate::layers::linear(hidden, d, true, vb.pp("mlp.fc2"))?,
            layer_scale2: vb.get(d, "layer_scale2.lambda1")?,
            heads: cfg.num_attention_heads,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, n, d) = xs.dims3()?;
        let hd = d / self.heads;
        let normed = self.norm1.forward(xs)?;
        let split = |l: &Linear| -> Result<Tensor> {
            l.forward(&normed)?
                .reshape((b, n, self.heads, hd))?
                .transpose(1, 2)
        };
        let attn = scaled_dot_product_attention(
            &split(&self.query)?,
            &split(&self.key)?,
            &split(&self.value)?,
        )?
        .transpose(1, 2)?
        .reshape((b, n, d))?;
        let xs = (xs
            + self
                .dense
                .forward(&attn)?
                .broadcast_mul(&self.layer_scale1)?)?;
        let mlp = self
            .fc2
            .forward(&self.fc1.forward(&self.norm2.forward(&xs)?)?.gelu_erf()?)?;
        &xs + mlp.broadcast_mul(&self.layer_scale2)?
    }
}

#[derive(Debug)]
pub struct Dinov2 {
    cls_token: Tensor,
    position_embeddings: Tensor,
    patch_embed: Conv2d,
    layers: Vec<Layer>,
    layernorm: LayerNorm,
    cfg: Dinov2Config,
    /// Position embeddings resized for the last input size: resizing is done on the host, and
    /// every image of a deployment has the same size.
    resized: Mutex<Option<((usize, usize), Tensor)>>,
}

impl Dinov2 {
    pub fn new(cfg: &Dinov2Config, vb: VarBuilder) -> Result<Self> {
        if cfg.use_swiglu_ffn || cfg.hidden_act != "gelu" {
            candle_core::bail!(
                "DINOv2 variant with {} / swiglu={} is not supported (TripoSG uses dinov2-large)",
                cfg.hidden_act,
                cfg.use_swiglu_ffn
            );
        }
        let d = cfg.hidden_size;
        let grid = cfg.image_size / cfg.patch_size;
        let emb = vb.pp("embeddings");
        // Present in every checkpoint (masked-image pretraining); inference never uses it, but
        // requesting it keeps the weight manifest exact.
        emb.get((1, d), "mask_token")?;
        let conv = Conv2dConfig {
            stride: cfg.patch_size,
            ..Default::default()
        };
        Ok(Self {
            cls_token: emb.get((1, 1, d), "cls_token")?,
            position_embeddings: emb.get((1, grid * grid + 1, d), "position_embeddings")?,
            patch_embed: candle_nn::conv2d(
                cfg.num_channels,
                d,
                cfg.patch_size,
                conv,
                emb.pp("patch_embeddings.projection"),
            )?,
            layers: (0..cfg.num_hidden_layers)
                .map(|i| Layer::new(cfg, vb.pp(format!("encoder.layer.{i}"))))
                .collect::<Result<_>>()?,
            layernorm: candle_nn::layer_norm(d, cfg.layer_norm_eps, vb.pp("layernorm"))?,
            cfg: cfg.clone(),
            resized: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &Dinov2Config {
        &self.cfg
    }

    /// transformers' `interpolate_pos_encoding`: the learned grid (37x37 for 518 px) resized
    /// bicubically in f32 to the patch grid of the input, CLS position kept.
    fn position_embeddings_for(&self, height: usize, width: usize) -> Result<Tensor> {
        let base = self.cfg.image_size / self.cfg.patch_size;
        let (gh, gw) = (height / self.cfg.patch_size, width / self.cfg.patch_size);
        if gh == base && gw == base {
            return Ok(self.position_embeddings.clone());
        }
        let mut cache = self.resized.lock().expect("position cache poisoned");
        if let Some((size, t)) = cache.as_ref() {
            if *size == (height, width) {
                return Ok(t.clone());
            }
        }
        let d = self.cfg.hidden_size;
        let dtype = self.position_embeddings.dtype();
        let cls = self.position_embeddings.narrow(1, 0, 1)?;
        let grid = self
            .position_embeddings
            .narrow(1, 1, base * base)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let resized = bicubic_resize(&grid, (base, base, d), (gh, gw));
        let resized = Tensor::from_vec(resized, (1, gh * gw, d), cls.device())?.to_dtype(dtype)?;
        let t = Tensor::cat(&[cls, resized], 1)?;
        *cache = Some(((height, width), t.clone()));
        Ok(t)
    }

    /// `last_hidden_state` `[batch, 1 + patches, hidden]` for normalised pixels
    /// `[batch, 3, height, width]`.
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = pixels.dims4()?;
        let dtype = self.cls_token.dtype();
        let patches = self
            .patch_embed
            .forward(&pixels.to_dtype(dtype)?)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let cls = self.cls_token.broadcast_as((b, 1, self.cfg.hidden_size))?;
        let mut xs = Tensor::cat(&[&cls, &patches], 1)?
            .broadcast_add(&self.position_embeddings_for(h, w)?)?;
        for layer in &self.layers {
            xs = layer.forward(&xs)?;
        }
        self.layernorm.forward(&xs)
    }
}
