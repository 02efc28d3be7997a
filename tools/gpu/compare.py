"""Full-size fidelity and speed: upstream PyTorch vs the Rust port on the same GPU, same weights.

Runs on the device machine (see tools/gpu/README.md). Builds the DiT, VAE and DINOv2-L with
random weights of the real sizes (seed 0, as ../shared/bench/ref_bench.py), saves them in the hub
layout, runs upstream in fp16 (and fp32 as the reference truth), runs `triposg bench` on the same
weights and inputs, and writes $OUT/compare.json: per-stage relative L2 errors and timings.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file


sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "golden"))
import upstream_stubs  # noqa: E402,F401

from transformers import Dinov2Config, Dinov2Model  # noqa: E402

from triposg.models.autoencoders import TripoSGVAEModel  # noqa: E402
from triposg.models.transformers import TripoSGDiTModel  # noqa: E402
from triposg.schedulers.scheduling_rectified_flow import RectifiedFlowScheduler  # noqa: E402

BIN = sys.argv[1]
WORK = Path(os.environ.get("WORK", "/tmp/triposg-compare"))
OUT = Path(os.environ.get("OUT", "."))
dev = "cuda"
torch.manual_seed(0)
torch.set_grad_enabled(False)
res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}


def timed(fn, warm=1, reps=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1000)
    return float(np.median(ts))


def rel_l2(a, b):
    a, b = a.float().cpu(), b.float().cpu()
    return float((a - b).norm() / b.norm())


# 1. Full-size random weights in the hub layout.
root = WORK / "TripoSG"
dit = TripoSGDiTModel(num_attention_heads=16, width=2048, in_channels=64, num_layers=21,
                      cross_attention_dim=1024).eval()
vae = TripoSGVAEModel().eval()
dino = Dinov2Model(Dinov2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                image_size=518, patch_size=14, layerscale_value=1.0)).eval()
# Default inits leave every norm at 1/0; perturb them so they matter, as the tiny fixtures do.
for m in (dit, vae, dino):
    for name, p in m.named_parameters():
        if p.ndim == 1 and ("norm" in name or "lambda" in name):
            p.add_(0.1 * torch.randn_like(p))
t0 = time.perf_counter()
dit.save_pretrained(root / "transformer")
vae.save_pretrained(root / "vae")
dino.save_pretrained(root / "image_encoder_dinov2")
RectifiedFlowScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False).save_pretrained(root / "scheduler")
res["save_s"] = time.perf_counter() - t0
# BriaRMBG-1.4 (random, fp32 as upstream runs it) in the hub layout of briaai/RMBG-1.4.
sys.path.insert(0, str(Path(sys.modules[TripoSGDiTModel.__module__].__file__).resolve().parents[3] / "scripts"))
from briarmbg import BriaRMBG  # noqa: E402

rmbg = BriaRMBG().eval()
(WORK / "RMBG-1.4").mkdir(parents=True, exist_ok=True)
save_file({k: v.contiguous() for k, v in rmbg.state_dict().items()}, str(WORK / "RMBG-1.4" / "model.safetensors"))
(WORK / "RMBG-1.4" / "config.json").write_text('{"in_ch": 3, "out_ch": 1}')
if os.environ.get("WEIGHTS_ONLY"):
    # Weights for other scripts (e2e.py's A/B of two builds), nothing timed.
    sys.exit(0)

# 2. Inputs, shared by both sides.
g = torch.Generator().manual_seed(1)
inputs = {
    "pixels": torch.randn(1, 3, 224, 224, generator=g),
    "latents2": torch.randn(2, 2048, 64, generator=g),
    "timesteps2": torch.tensor([980.0, 500.0]),
    "noise": torch.randn(1, 2048, 64, generator=g),
    "vae_latents": torch.randn(1, 2048, 64, generator=g),
    "queries10k": torch.rand(1, 10000, 3, generator=g) * 2 - 1,
    "queries200k": torch.rand(1, 200000, 3, generator=g) * 2 - 1,
    "rmbg_pixels": torch.rand(1, 3, 1024, 1024, generator=g) - 0.5,
}
dino32 = dino.to(dev)
cond_true = dino32(inputs["pixels"].to(dev)).last_hidden_state
inputs["cond2"] = torch.cat([torch.zeros_like(cond_true), cond_true]).cpu()
save_file({k: v.contiguous() for k, v in inputs.items()}, str(WORK / "inputs.safetensors"))


def upstream(models, dtype):
    d, t, v = models
    x = {k: val.to(dev, dtype) for k, val in inputs.items()}
    out, times = {}, {}
    out["dino"] = d(x["pixels"]).last_hidden_state
    times["dino_ms"] = timed(lambda: d(x["pixels"]).last_hidden_state)
    step = lambda: t(x["latents2"], inputs["timesteps2"].to(dev), encoder_hidden_states=x["cond2"], return_dict=False)[0]
    out["dit_step"] = step()
    times["dit_step_ms_b2"] = timed(step)
    sched = RectifiedFlowScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)
    cond2 = torch.cat([torch.zeros_like(out["dino"]), out["dino"]])

    def denoise():
        sched.set_timesteps(50, device=dev)
        lat = x["noise"]
        for tt in sched.timesteps:
            o = t(torch.cat([lat] * 2), tt.expand(2), encoder_hidden_states=cond2, return_dict=False)[0]
            u, c = o.chunk(2)
            lat = sched.step(u + 7.0 * (c - u), tt, lat, return_dict=False)[0]
        return lat

    out["denoise50"] = denoise()
    times["denoise50_ms"] = timed(denoise, warm=0, reps=2)
    z = v.post_quant(x["vae_latents"])

    def kv():
        h = z
        for b in v.decoder.blocks[:-1]:
            h = b(h)
        return h

    out["vae_kv"] = kv()
    times["vae_kv_ms"] = timed(kv)
    kvc = out["vae_kv"]
    q = x["queries10k"]
    out["sdf10k"] = v.decoder(z, v.embedder(q), kv_cache=kvc)[0]
    times["vae_query_only_10k_ms"] = timed(lambda: v.decoder(z, v.embedder(q), kv_cache=kvc)[0])
    q2 = x["queries200k"]
    times["vae_query_only_200k_ms_chunk50k"] = timed(
        lambda: [v.decoder(z, v.embedder(q2[:, i:i + 50000]), kv_cache=kvc)[0] for i in range(0, 200000, 50000)], reps=3)
    times["vae_decode_call_10k_ms"] = timed(lambda: v.decode(x["vae_latents"], q).sample)
    return out, times


# 3. Upstream fp32 (reference truth) and fp16 (what upstream ships); RMBG only in fp32.
rmbg = rmbg.to(dev)
rmbg_truth = rmbg(inputs["rmbg_pixels"].to(dev))[0][0]
ups_rmbg_ms = timed(lambda: rmbg(inputs["rmbg_pixels"].to(dev)))
del rmbg
truth, _ = upstream((dino32, dit.to(dev), vae.to(dev)), torch.float32)
truth = {k: val.float().cpu() for k, val in truth.items()}
ups16, ups_times = upstream((dino32.half(), dit.half(), vae.half()), torch.float16)
truth["rmbg"] = ups16["rmbg"] = rmbg_truth.float().cpu()
ups_times["rmbg_ms_fp32"] = ups_rmbg_ms
res["upstream_fp16_ms"] = ups_times
del dit, vae, dino, dino32
torch.cuda.empty_cache()

# 4. The port, same weights, same inputs, fp16 on the same card.
proc = subprocess.run([BIN, "--weights", str(WORK), "bench", "--inputs", str(WORK / "inputs.safetensors"),
                       "--out", str(WORK / "ours.safetensors"), "--device", "cuda", "--dtype", "f16",
                       "--stages", "dino,dit,denoise,vae,rmbg"],
                      capture_output=True, text=True)
print(proc.stderr[-4000:])
proc.check_returncode()
res["ours_fp16_ms"] = json.loads(proc.stdout.strip().splitlines()[-1])
ours = load_file(str(WORK / "ours.safetensors"))
res["rel_l2_vs_fp32_truth"] = {
    k: {"ours_fp16": rel_l2(ours[k], truth[k]), "upstream_fp16": rel_l2(ups16[k], truth[k]),
        "ours_vs_upstream_fp16": rel_l2(ours[k], ups16[k])}
    for k in ours
}
res["ratio_ours_over_upstream"] = {k: res["ours_fp16_ms"][k] / v for k, v in ups_times.items() if k in res["ours_fp16_ms"]}
print(json.dumps(res, indent=1))
OUT.mkdir(parents=True, exist_ok=True)
(OUT / "compare.json").write_text(json.dumps(res, indent=1))
