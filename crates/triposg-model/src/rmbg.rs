//! BriaRMBG-1.4 (`<weights>/RMBG-1.4/`), the IS-Net background-removal network upstream runs
//! before framing: nested U-Nets of RSU blocks. `VarBuilder` paths are the upstream state-dict
//! keys (`stage1.rebnconvin.conv_s1.weight`, ...).

use std::path::Path;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};
use serde::Deserialize;

use crate::weights::{read_config, CheckedSafetensors};

/// The side length upstream resizes every image to before segmenting it.
pub const RMBG_INPUT_SIZE: usize = 1024;

#[derive(Debug, Clone, Deserialize)]
pub struct RmbgConfig {
    pub in_ch: usize,
    pub out_ch: usize,
}

impl Default for RmbgConfig {
    fn default() -> Self {
        Self {
            in_ch: 3,
            out_ch: 1,
        }
    }
}

/// `REBNCONV`: 3x3 (dilated) conv, eval-mode BatchNorm, ReLU. The BatchNorm is an affine map
/// per channel, so it is folded into the conv: at 1024x1024 that saves a full pass over every
/// activation, and changes the result only by rounding.
#[derive(Debug, Clone)]
struct ConvBnRelu {
    conv: Conv2d,
}

impl ConvBnRelu {
    fn new(in_ch: usize, out_ch: usize, dilation: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: dilation,
            dilation,
            ..Default::default()
        };
        let conv = candle_nn::conv2d(in_ch, out_ch, 3, cfg, vb.pp("conv_s1"))?;
        let bn = vb.pp("bn_s1");
        let get = |name: &str| bn.get(out_ch, name)?.to_dtype(DType::F32);
        // torch's BatchNorm2d default eps.
        let scale = get("weight")?.div(&(get("running_var")? + 1e-5)?.sqrt()?)?;
        let shift = (get("bias")? - get("running_mean")?.mul(&scale)?)?;
        let dtype = conv.weight().dtype();
        let weight = conv
            .weight()
            .to_dtype(DType::F32)?
            .broadcast_mul(&scale.reshape((out_ch, 1, 1, 1))?)?;
        let bias = conv
            .bias()
            .expect("candle_nn::conv2d has a bias")
            .to_dtype(DType::F32)?
            .mul(&scale)?
            .add(&shift)?;
        Ok(Self {
            conv: Conv2d::new(weight.to_dtype(dtype)?, Some(bias.to_dtype(dtype)?), cfg),
        })
    }
}

impl Module for ConvBnRelu {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.conv.forward(xs)?.relu()
    }
}

/// `nn.MaxPool2d(2, stride=2, ceil_mode=True)`: an odd edge keeps its last row/column as a
/// window of one. candle pools only full windows, so odd edges get a -inf row/column first,
/// which never wins a max.
fn max_pool_ceil(xs: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = xs.dims4()?;
    let neg_inf = |shape: (usize, usize, usize, usize)| {
        Tensor::full(f32::NEG_INFINITY, shape, xs.device())?.to_dtype(xs.dtype())
    };
    let mut xs = xs.clone();
    if w % 2 == 1 {
        xs = Tensor::cat(&[&xs, &neg_inf((b, c, h, 1))?], 3)?;
    }
    if h % 2 == 1 {
        xs = Tensor::cat(&[&xs, &neg_inf((b, c, 1, w + w % 2))?], 2)?;
    }
    xs.max_pool2d(2)
}

/// Upstream's `_upsample_like`: `F.interpolate(mode='bilinear')` (align_corners=False, no
/// antialiasing), which candle's `upsample_bilinear2d` reproduces.
fn upsample_like(src: &Tensor, target: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = target.dims4()?;
    src.upsample_bilinear2d(h, w, false)
}

/// One residual U-block. `RSU7`..`RSU4` (`dilated = false`) pool between encoder levels,
/// run the bottom conv with dilation 2 and upsample on the way back; `RSU4F` (`dilated = true`)
/// keeps the resolution and grows the dilation 1, 2, 4 to 8 at the bottom instead.
#[derive(Debug, Clone)]
struct Rsu {
    input: ConvBnRelu,
    /// `rebnconv1` .. `rebnconv{L-1}`.
    encoder: Vec<ConvBnRelu>,
    /// `rebnconv{L}`.
    bottom: ConvBnRelu,
    /// `rebnconv{L-1}d` .. `rebnconv1d`.
    decoder: Vec<ConvBnRelu>,
    dilated: bool,
}

impl Rsu {
    fn new(
        height: usize,
        dilated: bool,
        (in_ch, mid_ch, out_ch): (usize, usize, usize),
        vb: VarBuilder,
    ) -> Result<Self> {
        let dilation = |level: usize| if dilated { 1 << (level - 1) } else { 1 };
        let encoder = (1..height)
            .map(|i| {
                let cin = if i == 1 { out_ch } else { mid_ch };
                ConvBnRelu::new(cin, mid_ch, dilation(i), vb.pp(format!("rebnconv{i}")))
            })
            .collect::<Result<_>>()?;
        let bottom_dilation = if dilated { 1 << (height - 1) } else { 2 };
        let decoder = (1..height)
            .rev()
            .map(|i| {
                let cout = if i == 1 { out_ch } else { mid_ch };
                ConvBnRelu::new(
                    2 * mid_ch,
                    cout,
                    dilation(i),
                    vb.pp(format!("rebnconv{i}d")),
                )
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            input: ConvBnRelu::new(in_ch, out_ch, 1, vb.pp("rebnconvin"))?,
            encoder,
            bottom: ConvBnRelu::new(
                mid_ch,
                mid_ch,
                bottom_dilation,
                vb.pp(format!("rebnconv{height}")),
            )?,
            decoder,
            dilated,
        })
    }
}

impl Module for Rsu {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let input = self.input.forward(xs)?;
        let mut skips: Vec<Tensor> = Vec::with_capacity(self.encoder.len());
        for conv in &self.encoder {
            let from = match skips.last() {
                None => input.clone(),
                Some(prev) if self.dilated => prev.clone(),
                Some(prev) => max_pool_ceil(prev)?,
            };
            skips.push(conv.forward(&from)?);
        }
        let mut xs = self
            .bottom
            .forward(skips.last().expect("RSU height >= 2"))?;
        for (k, (conv, skip)) in self.decoder.iter().zip(skips.iter().rev()).enumerate() {
            if k > 0 && !self.dilated {
                xs = upsample_like(&xs, skip)?;
            }
            xs = conv.forward(&Tensor::cat(&[&xs, skip], 1)?)?;
        }
        xs + input
    }
}

/// (height, dilated, (in, mid, out)) of `stage1`..`stage6`.
const ENCODER: [(usize, bool, (usize, usize, usize)); 6] = [
    (7, false, (64, 32, 64)),
    (6, false, (64, 32, 128)),
    (5, false, (128, 64, 256)),
    (4, false, (256, 128, 512)),
    (4, true, (512, 256, 512)),
    (4, true, (512, 256, 512)),
];

/// `stage5d` .. `stage1d`.
const DECODER: [(usize, bool, (usize, usize, usize)); 5] = [
    (4, true, (1024, 256, 512)),
    (4, false, (1024, 128, 256)),
    (5, false, (512, 64, 128)),
    (6, false, (256, 32, 64)),
    (7, false, (128, 16, 64)),
];

/// Input channels of `side1` .. `side6`.
const SIDES: [usize; 6] = [64, 64, 128, 256, 512, 512];

#[derive(Debug, Clone)]
pub struct BriaRmbg {
    conv_in: Conv2d,
    encoder: Vec<Rsu>,
    decoder: Vec<Rsu>,
    sides: Vec<Conv2d>,
}

impl BriaRmbg {
    pub fn new(cfg: &RmbgConfig, vb: VarBuilder) -> Result<Self> {
        let stride2 = Conv2dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        let same = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let stages = |names: &mut dyn Iterator<Item = String>,
                      specs: &[(usize, bool, (usize, usize, usize))]| {
            specs
                .iter()
                .zip(names)
                .map(|(&(height, dilated, chans), name)| {
                    Rsu::new(height, dilated, chans, vb.pp(name))
                })
                .collect::<Result<Vec<_>>>()
        };
        Ok(Self {
            conv_in: candle_nn::conv2d(cfg.in_ch, 64, 3, stride2, vb.pp("conv_in"))?,
            encoder: stages(&mut (1..=6).map(|i| format!("stage{i}")), &ENCODER)?,
            decoder: stages(&mut (1..=5).rev().map(|i| format!("stage{i}d")), &DECODER)?,
            sides: SIDES
                .iter()
                .enumerate()
                .map(|(i, &ch)| {
                    candle_nn::conv2d(ch, cfg.out_ch, 3, same, vb.pp(format!("side{}", i + 1)))
                })
                .collect::<Result<_>>()?,
        })
    }

    /// Loads `<dir>/config.json` and `<dir>/model.safetensors` (the `briaai/RMBG-1.4` layout).
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> crate::Result<Self> {
        let cfg: RmbgConfig = read_config(&dir.join("config.json"))?;
        let vb = CheckedSafetensors::open(&dir.join("model.safetensors"))?
            .into_var_builder(dtype, device);
        Ok(Self::new(&cfg, vb)?)
    }

    /// The six side outputs `sigmoid(d1) .. sigmoid(d6)`, each `[batch, out_ch, H, W]` at the
    /// input size; `d1` is the finest and the one upstream uses as the mask. Upstream feeds RGB
    /// in [0, 1] minus 0.5.
    pub fn forward(&self, xs: &Tensor) -> Result<Vec<Tensor>> {
        let mut hx = self.conv_in.forward(xs)?;
        let mut skips = Vec::with_capacity(self.encoder.len());
        for (i, stage) in self.encoder.iter().enumerate() {
            if i > 0 {
                hx = max_pool_ceil(&hx)?;
            }
            hx = stage.forward(&hx)?;
            skips.push(hx.clone());
        }
        // Side maps come out coarsest first: side6 on stage6, then side5 on stage5d, ...
        let mut maps = vec![hx.clone()];
        for (stage, skip) in self.decoder.iter().zip(skips.iter().rev().skip(1)) {
            hx = stage.forward(&Tensor::cat(&[&upsample_like(&hx, skip)?, skip], 1)?)?;
            maps.push(hx.clone());
        }
        self.sides
            .iter()
            .zip(maps.iter().rev())
            .map(|(side, map)| candle_nn::ops::sigmoid(&upsample_like(&side.forward(map)?, xs)?))
            .collect()
    }
}
