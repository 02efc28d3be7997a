"""Golden fixtures for image preparation, produced by the upstream TripoSG code (see README.md).

Writes, under tests/fixtures/:
  golden/rmbg.safetensors    BriaRMBG side outputs for fixed inputs, weights from `formula_weight`
  manifests/rmbg.json        full-size BriaRMBG state-dict names/shapes/dtypes
  images/*                   the upstream example images and derived test inputs
  golden/prep_*.safetensors  upstream `load_image` + `prepare_image` + BitImageProcessor outputs
"""
import io
import json
import math
import os
import shutil
import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REF = Path(os.environ.get("TRIPOSG_REF", REPO.parent / "shared" / "reference" / "TripoSG"))
OUT = REPO / "tests" / "fixtures"
sys.path.insert(0, str(REF / "scripts"))

# Upstream's preparation calls .cuda() on every tensor; here everything stays on the CPU.
torch.Tensor.cuda = lambda self, *args, **kwargs: self

from briarmbg import BriaRMBG  # noqa: E402
from image_process import prepare_image  # noqa: E402
from transformers import BitImageProcessor  # noqa: E402

EXAMPLES = REF / "assets" / "example_data"
IMAGES = OUT / "images"
# TripoSG's feature_extractor_dinov2/preprocessor_config.json.
FEATURE_EXTRACTOR = dict(do_resize=True, size={"shortest_edge": 256}, resample=3, do_center_crop=True,
                         crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 255,
                         do_normalize=True, image_mean=[0.485, 0.456, 0.406],
                         image_std=[0.229, 0.224, 0.225], do_convert_rgb=True)

torch.set_grad_enabled(False)


def formula_weight(index, name, shape):
    """The 44M RMBG parameters are too big to commit, so both sides compute them: tensor `index`
    in sorted-name order gets sin(i * 12.9898 + index * 78.233) (f64, then f32) scaled per kind
    to keep activations O(1) through ~100 conv layers. The Rust test has the same formula."""
    n = math.prod(shape)
    v = np.sin(np.arange(n, dtype=np.float64) * 12.9898 + index * 78.233)
    if name.endswith("running_var"):
        v = 0.75 + 0.5 * v
    elif name.endswith("bn_s1.weight"):
        v = 1.0 + 0.2 * v
    elif name.endswith("weight"):
        # sin has variance 1/2: this is He initialisation's variance 2 / fan_in.
        v = v * math.sqrt(4.0 / math.prod(shape[1:]))
    else:  # biases and running means
        v = 0.1 * v
    return torch.from_numpy(v.astype(np.float32)).reshape(shape)


def rmbg():
    net = BriaRMBG().eval()
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    manifest = {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
                for k, v in sorted(net.state_dict().items())}
    (OUT / "manifests" / "rmbg.json").write_text(json.dumps({"config": {"in_ch": 3, "out_ch": 1},
                                                             "tensors": manifest}, indent=1))
    net.load_state_dict({k: formula_weight(i, k, list(state[k].shape))
                         for i, k in enumerate(sorted(state))}, strict=False)
    out = {}
    # Odd, non-square sizes exercise ceil-mode pooling (36x50 -> 18x25 -> 9x13 -> ...) and
    # non-integer upsampling; 64x64 is the plain power-of-two case.
    for h, w in [(72, 100), (64, 64)]:
        g = torch.Generator().manual_seed(h * 1000 + w)
        x = torch.rand(1, 3, h, w, generator=g) - 0.5
        sides, _ = net(x)
        out[f"input_{h}x{w}"] = x
        for i, s in enumerate(sides):
            out[f"side{i + 1}_{h}x{w}"] = s.contiguous()
            print(f"rmbg {h}x{w} side{i + 1}: mean {s.mean():.3f} std {s.std():.3f}")
    save_file(out, OUT / "golden" / "rmbg.safetensors")


class FakeRmbg(torch.nn.Module):
    """Stands in for RMBG in the preparation fixtures (random weights give no object): a smooth
    "darker than the white background" score of the network's input, so that the rest of the
    pipeline (resizes, Otsu, components, contours, framing) meets a realistic mask. The Rust
    test computes the same function."""

    def forward(self, x):
        score = torch.sigmoid(20.0 * (0.4 - x.min(dim=1, keepdim=True).values))
        return [score], None


def prep_case(name, path):
    framed = prepare_image(str(path), bg_color=np.array([1.0, 1.0, 1.0]), rmbg_net=FakeRmbg())
    framed.save(OUT / "golden" / f"prep_{name}.png")
    pixels = BitImageProcessor(**FEATURE_EXTRACTOR)(framed, return_tensors="pt").pixel_values
    save_file({"pixel_values": pixels[0].contiguous()}, OUT / "golden" / f"prep_{name}.safetensors")
    print(f"prep {name}: {Image.open(path).size} -> framed {framed.size}")


def prep():
    IMAGES.mkdir(parents=True, exist_ok=True)
    # The upstream examples are JPEG files named .png. JPEG decoders legitimately differ by a
    # few levels (libjpeg-turbo here, zune-jpeg in Rust), so preparation is compared on
    # libjpeg-turbo's pixels saved losslessly, and the decoders are compared separately.
    for name in ["jkghed", "qwvfsd", "yywdsd"]:
        shutil.copy(EXAMPLES / f"{name}.png", IMAGES / f"{name}.jpg")
        cv2.imwrite(str(IMAGES / f"{name}.png"), cv2.imread(str(IMAGES / f"{name}.jpg"), cv2.IMREAD_UNCHANGED))
        prep_case(name, IMAGES / f"{name}.png")

    # The user's own cut-out: an alpha channel upstream's histogram test accepts.
    rgb = np.asarray(Image.open(EXAMPLES / "qwvfsd.png").convert("RGB"))
    alpha = np.clip((245.0 - rgb.min(axis=2).astype(np.float64)) * 8.0, 0, 255).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(IMAGES / "qwvfsd_rgba.png")
    prep_case("qwvfsd_rgba", IMAGES / "qwvfsd_rgba.png")

    # 16-bit RGBA larger than 2000 px: upstream's INTER_AREA downscale and depth reduction.
    h, w = 1500, 2100
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = np.hypot(yy - 700, xx - 1000)
    alpha = np.clip((500.0 - r) / 40.0, 0, 1)
    bgra = np.empty((h, w, 4), np.uint16)
    # Coarse steps keep the PNG small; odd multiples keep every 16-bit value off the 8-bit grid.
    bgra[..., 0] = (np.floor(xx / 150) * 4111 + 3) % 65536
    bgra[..., 1] = (np.floor(yy / 150) * 6007 + 5) % 65536
    bgra[..., 2] = 30001
    bgra[..., 3] = np.round(alpha * 65535)
    cv2.imwrite(str(IMAGES / "disk16.png"), bgra)
    prep_case("disk16", IMAGES / "disk16.png")


def png_header(width, height, idat=b""):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def formats():
    """Small inputs in every supported encoding, from one 64x48 crop (see tests/decode.rs)."""
    fmt = IMAGES / "formats"
    bad = IMAGES / "bad"
    fmt.mkdir(parents=True, exist_ok=True)
    bad.mkdir(parents=True, exist_ok=True)
    src = Image.open(EXAMPLES / "qwvfsd.png").convert("RGB").crop((400, 400, 464, 448))
    src.save(fmt / "rgb.png")
    src.save(fmt / "rgb.bmp")
    src.save(fmt / "rgb.tiff")
    src.save(fmt / "rgb.webp", lossless=True)
    src.convert("L").save(fmt / "gray.png")
    src.quantize(64).save(fmt / "palette.png")
    src.quantize(64).save(fmt / "first_frame.gif", save_all=True,
                          append_images=[Image.new("RGB", src.size, (255, 0, 0)).quantize(4)])
    src.save(fmt / "rgb.jpg", quality=95)
    src.convert("CMYK").save(fmt / "cmyk.jpg", quality=95)
    rgb16 = (np.asarray(src).astype(np.uint16) * 257)[..., ::-1]
    cv2.imwrite(str(fmt / "rgb16.png"), rgb16)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display.
    src.save(fmt / "rotated.jpg", quality=95, exif=exif)

    data = (fmt / "rgb.png").read_bytes()
    (bad / "truncated.png").write_bytes(data[: len(data) // 2])
    (bad / "empty.png").write_bytes(b"")
    (bad / "text.jpg").write_bytes(b"this is not an image\n")
    # Headers that promise enormous images over a few bytes of data.
    (bad / "huge_100000x100000.png").write_bytes(png_header(100_000, 100_000, zlib.compress(b"\0" * 65536)))
    (bad / "long_60000x10.png").write_bytes(png_header(60_000, 10))
    buf = io.BytesIO()
    Image.new("L", (4000, 4000)).save(buf, "PNG")
    (bad / "black.png").write_bytes(buf.getvalue())


if __name__ == "__main__":
    rmbg()
    prep()
    formats()
