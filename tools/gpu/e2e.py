"""End to end on the GPU: upstream's whole pipeline vs `triposg generate`, same weights, same photo.

Runs on the device machine after compare.py has written full-size random weights in the hub
layout to $WORK/TripoSG (see tools/gpu/README.md):
  WORK=/tmp/cmp OUT=$OUT PYTHONPATH=/tmp/site:carry/ref python3 tools/gpu/e2e.py carry/triposg IMAGE

Random weights give random latents whose SDF changes sign everywhere: upstream's octree then
refines ~146M points into a noise "mesh" no user ever gets. So this run uses a copy of the VAE
whose query path draws a sphere of radius 0.6: the last cross-attention block's output
projections are zeroed (the block then passes its input through), the query projection reads
only x, y, z and a bias, and the output projection reads the layer norm's 1/sigma, which is a
function of the radius alone. Every matmul and attention still runs at full size, and the field
is as steep as a real one (|logit| < 0.95, the band upstream refines, is ~0.06 wide), so both
implementations decode a realistic number of points (7.5M) into a realistic mesh (~0.85M faces at
depth 9). The DiT, DINOv2 and sampling loop are the random full-size ones.

Both sides run one warm-up job and one timed job in the same process (models loaded once, as a
server keeps them). Upstream's CUDA marching cubes (`diso`) is not installable here; it is
replaced by scikit-image's, whose time is reported and subtracted (upstream's figure is then a
lower bound). Peak GPU memory is sampled with nvidia-smi for both processes (what the card
must hold), and torch's own counter is given for upstream too. Ours runs again with `--offload`
(models in host memory, each copied to the card for its stage; no print files) for its time and
peak memory. Writes $OUT/e2e.json.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "golden"))
import upstream_stubs  # noqa: E402,F401

from transformers import BitImageProcessor, Dinov2Model  # noqa: E402

import triposg.inference_utils as iu  # noqa: E402
from triposg.models.autoencoders import TripoSGVAEModel  # noqa: E402
from triposg.models.transformers import TripoSGDiTModel  # noqa: E402
from triposg.pipelines.pipeline_triposg import TripoSGPipeline  # noqa: E402
from triposg.schedulers.scheduling_rectified_flow import RectifiedFlowScheduler  # noqa: E402

BIN, IMAGE = sys.argv[1], sys.argv[2]
DEPTH = int(os.environ.get("E2E_DEPTH", "9"))
WORK = Path(os.environ.get("WORK", "/tmp/triposg-compare"))
OUT = Path(os.environ.get("OUT", "."))
SRC = WORK / "TripoSG"
E2E = WORK / "e2e" / "TripoSG"
RADIUS = 0.6
torch.set_grad_enabled(False)


def sphere_vae(vae):
    """Sets the query path so that the decoded field is a sphere of RADIUS (see the docstring)."""
    dec = vae.decoder
    block = dec.blocks[-1]
    for linear in (block.attn2.to_out[0], block.ff.net[2]):
        linear.weight.zero_()
        if linear.bias is not None:
            linear.bias.zero_()
    q = torch.rand(4, 3) * 2 - 1
    assert torch.allclose(vae.embedder(q)[:, :3], q), "embedding no longer starts with x, y, z"
    dim = dec.proj_query.out_features
    s, group, bias_channels = 3.0, 100, dim - 600
    w = torch.zeros(dim, dec.proj_query.in_features)
    for axis in range(3):
        w[2 * axis * group:(2 * axis + 1) * group, axis] = s
        w[(2 * axis + 1) * group:(2 * axis + 2) * group, axis] = -s
    r = torch.ones(dim)
    r[:600] = 0
    r[600 + bias_channels // 2:] = -1
    dec.proj_query.weight.copy_(w)
    dec.proj_query.bias.copy_(r)
    dec.norm_out.weight.fill_(1.0)
    dec.norm_out.bias.zero_()
    # LayerNorm of W q + r has mean 0 and sigma(q)^2 = (2 group s^2 |q|^2 + bias_channels) / dim,
    # so r . LN = bias_channels / sigma. The decoder returns -proj_out: positive inside.
    k = 33.0
    alpha = k / bias_channels
    sigma_r = ((2 * group * s * s * RADIUS ** 2 + bias_channels) / dim) ** 0.5
    dec.proj_out.weight.copy_(-alpha * r[None, :])
    dec.proj_out.bias.fill_(k / sigma_r)


class GpuPeak:
    """Peak of nvidia-smi's used memory on card 0 while the block runs, and above `baseline` (the
    level before this process touched the card, or before the child process starts)."""

    def __init__(self, baseline=None):
        self.before = baseline

    @staticmethod
    def used():
        out = subprocess.run(["nvidia-smi", "-i", "0", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, check=True).stdout
        return int(out.split()[0])

    def __enter__(self):
        if self.before is None:
            self.before = self.used()
        self.proc = subprocess.Popen(["nvidia-smi", "-i", "0", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                      "-lms", "20"], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        out, _ = self.proc.communicate()
        samples = [int(x) for x in out.split() if x.isdigit()]
        self.peak_mib = max(samples + [self.used()])
        self.above_mib = self.peak_mib - self.before


IDLE_MIB = GpuPeak.used()
res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "octree_depth": DEPTH,
       "image": IMAGE, "steps": 50, "guidance": 7.0, "idle_gpu_mib": IDLE_MIB}

# 1. The sphere VAE beside the random DiT and DINOv2 (linked, not copied).
E2E.mkdir(parents=True, exist_ok=True)
for part in ("transformer", "image_encoder_dinov2", "scheduler"):
    link = E2E / part
    if not link.exists():
        link.symlink_to(SRC / part)
vae = TripoSGVAEModel.from_pretrained(SRC / "vae").eval()
sphere_vae(vae)
vae.save_pretrained(E2E / "vae")
if os.environ.get("WEIGHTS_ONLY"):
    # The sphere copy for `triposg generate` runs of other builds, nothing timed.
    sys.exit(0)

# 2. Upstream: image preparation, pipeline, mesh export, as scripts/inference_triposg.py.
sys.path.insert(0, str(Path(iu.__file__).resolve().parent.parent / "scripts"))
import trimesh  # noqa: E402
from PIL import Image  # noqa: E402

try:
    from image_process import prepare_image  # noqa: E402 (needs OpenCV and torchvision)
    res["upstream_image_prep"] = "scripts/image_process.prepare_image"
except ImportError as e:
    # The shape does not depend on the photo here (sphere VAE): the cut-out on white keeps the
    # workload identical; upstream's crop and resize (a few ms) are then missing from its time.
    res["upstream_image_prep"] = f"cut-out composited on white with PIL ({e})"

    def prepare_image(path, bg_color, rmbg_net=None):
        rgba = Image.open(path).convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")

mc_ms = []


class SkimageDMC(torch.nn.Module):
    def __init__(self, dtype=None):
        super().__init__()

    def forward(self, sdf, deform=None, return_quads=False, normalize=False):
        from skimage import measure
        grid = np.nan_to_num(sdf.detach().float().cpu().numpy(), nan=1.0)
        t0 = time.perf_counter()
        v, f, _, _ = measure.marching_cubes(grid, 0.0)
        mc_ms.append((time.perf_counter() - t0) * 1000)
        return torch.from_numpy(v.copy()), torch.from_numpy(f.copy().astype(np.int64))


iu.DiffDMC = SkimageDMC

# Upstream's decode calls (each recomputes the key/values), timed one by one with the points they
# decode: the decode target compares these with our whole decode stage. The
# synchronisation around each call can add a little to upstream's job time (a call's launches no
# longer overlap the previous call's kernels).
decode_calls = {"ms": 0.0, "calls": 0, "points": 0}
upstream_decode = vae.decode


def timed_decode(latents, sampled_points, **kwargs):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = upstream_decode(latents, sampled_points=sampled_points, **kwargs)
    torch.cuda.synchronize()
    decode_calls["ms"] += (time.perf_counter() - t0) * 1000
    decode_calls["calls"] += 1
    decode_calls["points"] += int(sampled_points.shape[0] * sampled_points.shape[1])
    return out


vae.decode = timed_decode
torch.cuda.reset_peak_memory_stats()
with GpuPeak(IDLE_MIB) as up_mem:
    pipe = TripoSGPipeline(
        vae=vae,
        transformer=TripoSGDiTModel.from_pretrained(SRC / "transformer"),
        scheduler=RectifiedFlowScheduler.from_pretrained(SRC / "scheduler"),
        image_encoder_dinov2=Dinov2Model.from_pretrained(SRC / "image_encoder_dinov2"),
        feature_extractor_dinov2=BitImageProcessor(
            do_resize=True, size={"shortest_edge": 256}, resample=3, do_center_crop=True,
            crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 255,
            do_normalize=True, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
            do_convert_rgb=True),
    ).to("cuda", torch.float16)

    def upstream_job(seed, path):
        t0 = time.perf_counter()
        img = prepare_image(IMAGE, bg_color=np.array([1.0, 1.0, 1.0]), rmbg_net=None)
        out = pipe(image=img, generator=torch.Generator(device="cuda").manual_seed(seed),
                   num_inference_steps=50, guidance_scale=7.0, flash_octree_depth=DEPTH).samples[0]
        mesh = trimesh.Trimesh(out[0].astype(np.float32), np.ascontiguousarray(out[1]))
        mesh.export(path)
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1000, mesh

    upstream_job(42, WORK / "upstream_warm.glb")
    decode_calls.update(ms=0.0, calls=0, points=0)
    total_ms, up_mesh = upstream_job(43, WORK / "upstream.glb")
res["upstream"] = {
    "job_ms_incl_skimage_mc": total_ms,
    "skimage_mc_ms": mc_ms[-1],
    "job_ms": total_ms - mc_ms[-1],
    "decode_calls_ms": decode_calls["ms"],
    "decode_calls": decode_calls["calls"],
    "decode_points": decode_calls["points"],
    "faces": int(len(up_mesh.faces)),
    "vertex_radius_mean": float(np.linalg.norm(up_mesh.vertices, axis=1).mean()),
    "peak_gpu_mib_nvidia_smi": up_mem.peak_mib,
    "peak_gpu_mib_above_idle": up_mem.above_mib,
    "torch_max_allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
    "torch_max_reserved_mib": torch.cuda.max_memory_reserved() / 2**20,
}
print(json.dumps(res["upstream"], indent=1), flush=True)
del pipe, vae
torch.cuda.empty_cache()

# 3. Ours: two candidates in one process (the first is the warm-up), print files included; then
# again with the models offloaded to host memory between stages (no print files: GPU only).
def ours(name, *extra):
    summary = WORK / f"{name}_summary.json"
    with GpuPeak() as mem:
        proc = subprocess.run([BIN, "--weights", str(E2E.parent), "generate", IMAGE, "--device", "cuda",
                               "--dtype", "f16", "--octree-depth", str(DEPTH), "--seed", "42",
                               "--candidates", "2", "--formats", "glb", "--out", str(WORK / name),
                               "--summary-json", str(summary), *extra], capture_output=True, text=True)
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    proc.check_returncode()
    rows = json.loads(summary.read_text())
    timed = rows[-1]["done"]
    mesh = trimesh.load(WORK / name / f"{Path(IMAGE).stem}_seed43.glb", force="mesh")
    return {
        "job_ms": timed["seconds"] * 1000,
        "stage_ms": {k: v * 1000 for k, v in timed["stage_seconds"]},
        "print_ms": (timed["print_seconds"] or 0) * 1000,
        "print_size_mm": timed["print_size_mm"],
        "faces": timed["faces"],
        "vertex_radius_mean": float(np.linalg.norm(mesh.vertices, axis=1).mean()),
        "peak_gpu_mib_nvidia_smi": mem.peak_mib,
        "peak_gpu_mib_above_idle": mem.above_mib,
        "warmup_job_ms": rows[0]["done"]["seconds"] * 1000,
    }


res["ours"] = ours("ours")
res["ours_offload"] = ours("ours_offload", "--offload", "--no-print")
res["ratio_ours_over_upstream"] = {
    "job": res["ours"]["job_ms"] / res["upstream"]["job_ms"],
    "decode_stage_vs_upstream_decode_calls": res["ours"]["stage_ms"]["decode"] / res["upstream"]["decode_calls_ms"],
    "job_vs_upstream_incl_skimage_mc": res["ours"]["job_ms"] / res["upstream"]["job_ms_incl_skimage_mc"],
    "peak_gpu_memory_above_idle": res["ours"]["peak_gpu_mib_above_idle"] / up_mem.above_mib,
    "offload_job": res["ours_offload"]["job_ms"] / res["upstream"]["job_ms"],
    "offload_peak_gpu_memory_above_idle": res["ours_offload"]["peak_gpu_mib_above_idle"] / up_mem.above_mib,
}
print(json.dumps(res, indent=1))
OUT.mkdir(parents=True, exist_ok=True)
(OUT / "e2e.json").write_text(json.dumps(res, indent=1))
