"""Upstream's per-kernel GPU time for one DiT step (batch 2) and one 50k-point VAE query call,
from torch.profiler, on the weights and inputs compare.py left in $WORK, in fp16 as upstream
ships. Printed in the same table form as kernel_summary.py (our side, from ncu), so the two can
be read side by side: python3 torch_kernels.py > $OUT/torch-kernels.txt
"""
import os
import sys
from collections import defaultdict
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "golden"))
import upstream_stubs  # noqa: E402,F401

from triposg.models.autoencoders import TripoSGVAEModel  # noqa: E402
from triposg.models.transformers import TripoSGDiTModel  # noqa: E402

WORK = Path(os.environ.get("WORK", "/tmp/triposg-compare"))
torch.set_grad_enabled(False)
dev, dt = "cuda", torch.float16
x = {k: v.to(dev, dt) for k, v in load_file(str(WORK / "inputs.safetensors")).items()}
dit = TripoSGDiTModel.from_pretrained(WORK / "TripoSG" / "transformer").to(dev, dt).eval()
vae = TripoSGVAEModel.from_pretrained(WORK / "TripoSG" / "vae").to(dev, dt).eval()
t2 = x["timesteps2"].float()
z = vae.post_quant(x["vae_latents"])
kv = z
for b in vae.decoder.blocks[:-1]:
    kv = b(kv)
q = x["queries200k"][:, :50000]

stages = {
    "dit": lambda: dit(x["latents2"], t2, encoder_hidden_states=x["cond2"], return_dict=False)[0],
    "vae_query_50k": lambda: vae.decoder(z, vae.embedder(q), kv_cache=kv)[0],
}
for name, fn in stages.items():
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    total, count = defaultdict(float), defaultdict(int)
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            total[e.name[:90]] += e.device_time
            count[e.name[:90]] += 1
    all_us = sum(total.values())
    print(f"== upstream {name}")
    print(f"{'kernel':90} {'calls':>6} {'ms':>9} {'share':>6}")
    for k, us in sorted(total.items(), key=lambda kv: -kv[1])[:25]:
        print(f"{k:90} {count[k]:6} {us / 1e3:9.3f} {100 * us / all_us:5.1f}%")
    print(f"{'all':90} {sum(count.values()):6} {all_us / 1e3:9.3f}")
