"""Golden fixtures for the Rust port, produced by the upstream TripoSG code (see README.md).

Writes, under tests/fixtures/:
  tiny/TripoSG/...        tiny random-weight models in the real `save_pretrained` layout
  tiny-surface/TripoSG/   the same with the VAE output layer shifted and sharpened so that jobs
                          find a surface (job/CLI tests only)
  golden/*.safetensors    inputs and outputs of each module and of the sampling loop (fp32, CPU)
  manifests/*.json        full-size state-dict names/shapes/dtypes + real configs (meta device)
"""
import json
import shutil
import os
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REF = Path(os.environ.get("TRIPOSG_REF", REPO.parent / "shared" / "reference" / "TripoSG"))
OUT = REPO / "tests" / "fixtures"

sys.path.insert(0, str(HERE))
from upstream_stubs import stub  # noqa: E402,F401  (re-exported for the other fixture scripts)

sys.path.insert(0, str(REF))

from transformers import BitImageProcessor, Dinov2Config, Dinov2Model  # noqa: E402

from triposg.models.autoencoders import TripoSGVAEModel  # noqa: E402
from triposg.models.transformers import TripoSGDiTModel  # noqa: E402
from triposg.pipelines.pipeline_triposg import TripoSGPipeline  # noqa: E402
from triposg.schedulers.scheduling_rectified_flow import RectifiedFlowScheduler  # noqa: E402

torch.manual_seed(0)
torch.set_grad_enabled(False)

TINY_DIT = dict(num_attention_heads=4, width=64, in_channels=8, num_layers=5, cross_attention_dim=32)
TINY_VAE = dict(in_channels=3, latent_channels=8, num_attention_heads=4, width_encoder=32,
                width_decoder=64, num_layers_encoder=1, num_layers_decoder=3,
                embedding_type="frequency", embed_frequency=8, embed_include_pi=False)
TINY_DINO = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=4,
                 image_size=518, patch_size=14, layerscale_value=1.0, layer_norm_eps=1e-6,
                 qkv_bias=True, hidden_act="gelu", use_swiglu_ffn=False)

REAL_DIT = dict(num_attention_heads=16, width=2048, in_channels=64, num_layers=21, cross_attention_dim=1024)
REAL_VAE = dict(in_channels=3, latent_channels=64, num_attention_heads=8, width_encoder=512,
                width_decoder=1024, num_layers_encoder=8, num_layers_decoder=16,
                embedding_type="frequency", embed_frequency=8, embed_include_pi=False)
REAL_DINO = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4,
                 image_size=518, patch_size=14, layerscale_value=1.0, layer_norm_eps=1e-6,
                 qkv_bias=True, hidden_act="gelu", use_swiglu_ffn=False)
FEATURE_EXTRACTOR = dict(do_resize=True, size={"shortest_edge": 256}, resample=3, do_center_crop=True,
                         crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 255,
                         do_normalize=True, image_mean=[0.485, 0.456, 0.406],
                         image_std=[0.229, 0.224, 0.225], do_convert_rgb=True)


def randomize(model):
    """Default inits leave norms at 1/0 and layer scales at 1: randomise every parameter so each
    weight matters to the output, keeping activations O(1)."""
    for name, p in model.named_parameters():
        if p.ndim == 1 and ("norm" in name or "lambda" in name):
            p.copy_(1.0 + 0.3 * torch.randn_like(p))
        elif p.ndim == 1:
            p.copy_(0.2 * torch.randn_like(p))
        else:
            fan_in = p[0].numel() if p.ndim > 1 else 1
            scale = 1.0 if "embeddings" in name and "patch" not in name else fan_in ** -0.5
            p.copy_(scale * torch.randn_like(p))
    return model.eval()


def f32(d):
    return {k: v.detach().to(torch.float32).contiguous() for k, v in d.items()}


def tiny_models(root):
    dit = randomize(TripoSGDiTModel(**TINY_DIT))
    vae = randomize(TripoSGVAEModel(**TINY_VAE))
    dino = randomize(Dinov2Model(Dinov2Config(**TINY_DINO)))
    sched = RectifiedFlowScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)
    fx = BitImageProcessor(**FEATURE_EXTRACTOR)
    dit.save_pretrained(root / "transformer")
    vae.save_pretrained(root / "vae")
    dino.save_pretrained(root / "image_encoder_dinov2")
    sched.save_pretrained(root / "scheduler")
    fx.save_pretrained(root / "feature_extractor_dinov2")
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "TripoSGPipeline",
        "feature_extractor_dinov2": ["transformers", "BitImageProcessor"],
        "image_encoder_dinov2": ["transformers", "Dinov2Model"],
        "scheduler": ["triposg.schedulers", "RectifiedFlowScheduler"],
        "transformer": ["triposg.models.transformers", "TripoSGDiTModel"],
        "vae": ["triposg.models.autoencoders", "TripoSGVAEModel"],
    }, indent=2))
    return dit, vae, dino, sched, fx


class StopAfterDenoise(Exception):
    pass


def run_pipeline_loop(pipe, pixels, latents, steps, guidance):
    """Runs the real `TripoSGPipeline.__call__` up to the end of its sampling loop, recording
    the latents after every step, and stops before mesh extraction (which needs diso)."""
    trace = []

    def on_step(_pipe, i, _t, kwargs):
        trace.append(kwargs["latents"].clone())
        if i == steps - 1:
            raise StopAfterDenoise
        return kwargs

    try:
        pipe(pixels, num_inference_steps=steps, num_tokens=latents.shape[1], guidance_scale=guidance,
             latents=latents.clone(), callback_on_step_end=on_step)
    except StopAfterDenoise:
        pass
    assert len(trace) == steps
    return torch.stack(trace, 0)


def golden(dit, vae, dino, sched, fx, out):
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(1)

    # DINOv2: the 224x224 input TripoSG uses (pos-embedding interpolation 37 -> 16), the native
    # 518 grid (no interpolation) and a non-square input.
    io = {}
    for name, (h, w) in {"224": (224, 224), "518": (518, 518), "98x154": (98, 154)}.items():
        px = torch.randn(1, 3, h, w, generator=g)
        io[f"pixels_{name}"] = px
        io[f"hidden_{name}"] = dino(px).last_hidden_state
    save_file(f32(io), out / "dinov2.safetensors")

    # DiT: CFG-style batch of two with different timesteps, enough layers for the skips.
    lat = torch.randn(2, 16, TINY_DIT["in_channels"], generator=g)
    ctx = torch.randn(2, 7, TINY_DIT["cross_attention_dim"], generator=g)
    t = torch.tensor([980.0, 500.0])
    save_file(f32({"latents": lat, "timesteps": t, "context": ctx,
                   "output": dit(lat, t, encoder_hidden_states=ctx, return_dict=False)[0]}),
              out / "dit.safetensors")

    # Scheduler: upstream schedules for several step counts and shifts.
    sch = {}
    for shift in (1.0, 3.0):
        s = RectifiedFlowScheduler(num_train_timesteps=1000, shift=shift, use_dynamic_shifting=False)
        for steps in (1, 7, 50):
            s.set_timesteps(steps)
            sch[f"timesteps_shift{shift:g}_steps{steps}"] = s.timesteps
            sch[f"sigmas_shift{shift:g}_steps{steps}"] = s.sigmas
    save_file(f32(sch), out / "scheduler.safetensors")

    # VAE decoder: key/value tokens and SDF at a few hundred points, batch of two shapes.
    z = torch.randn(2, 16, TINY_VAE["latent_channels"], generator=g)
    pts = torch.rand(2, 300, 3, generator=g) * 2.02 - 1.01
    h = vae.post_quant(z)
    for block in vae.decoder.blocks[:-1]:
        h = block(h)
    save_file(f32({"latents": z, "points": pts, "kv_tokens": h,
                   "sdf": vae.decode(z, pts).sample}), out / "vae.safetensors")

    # The sampling loop of the real pipeline, from pixels to latents, with and without CFG.
    pipe = TripoSGPipeline(vae=vae, transformer=dit, scheduler=sched, image_encoder_dinov2=dino,
                           feature_extractor_dinov2=fx)
    px = torch.randn(1, 3, 224, 224, generator=g)
    noise = torch.randn(1, 16, TINY_DIT["in_channels"], generator=g)
    loop = {"pixels": px, "noise": noise, "cond": dino(px).last_hidden_state}
    for guidance in (7.0, 1.0):
        loop[f"trace_g{guidance:g}"] = run_pipeline_loop(pipe, px, noise, steps=4, guidance=guidance)
    save_file(f32(loop), out / "denoise.safetensors")


def tiny_with_a_surface(src, dst):
    """The tiny random VAE's SDF never changes sign, so a job on it finds no surface. This copy
    shifts the VAE's output bias by the median logit (so the zero level cuts through the box)
    and scales the output layer by 20 (so the octree's |logit| < 0.95 band is a thin shell, as
    with a trained model). Used by the job and CLI tests, never by the fidelity tests."""
    shutil.copytree(src, dst, dirs_exist_ok=True)
    vae = TripoSGVAEModel.from_pretrained(dst / "vae").eval()
    g = torch.Generator().manual_seed(2)
    z = torch.randn(4, 16, TINY_VAE["latent_channels"], generator=g)
    pts = torch.rand(4, 4096, 3, generator=g) * 2 - 1
    median = vae.decode(z, pts).sample.median()
    proj = vae.decoder.proj_out
    # logits = -(proj_out(x)): adding the median to the bias moves every logit down by it.
    proj.bias.add_(median).mul_(20.0)
    proj.weight.mul_(20.0)
    vae.save_pretrained(dst / "vae")


def manifest(model, config, class_name):
    tensors = {k: {"shape": list(v.shape), "dtype": "F32"} for k, v in model.state_dict().items()}
    return {"class_name": class_name, "config": config, "tensors": dict(sorted(tensors.items()))}


def manifests(out):
    out.mkdir(parents=True, exist_ok=True)
    with torch.device("meta"):
        dit = TripoSGDiTModel(**REAL_DIT)
        vae = TripoSGVAEModel(**REAL_VAE)
        dino = Dinov2Model(Dinov2Config(**REAL_DINO))
    for name, m, cfg, cls in (("transformer", dit, REAL_DIT, "TripoSGDiTModel"),
                              ("vae", vae, REAL_VAE, "TripoSGVAEModel"),
                              ("image_encoder_dinov2", dino, REAL_DINO, "Dinov2Model")):
        (out / f"{name}.json").write_text(json.dumps(manifest(m, cfg, cls), indent=1) + "\n")


if __name__ == "__main__":
    import diffusers
    import transformers
    tiny_root = OUT / "tiny" / "TripoSG"
    models = tiny_models(tiny_root)
    golden(*models, OUT / "golden")
    manifests(OUT / "manifests")
    tiny_with_a_surface(tiny_root, OUT / "tiny-surface" / "TripoSG")
    (OUT / "VERSIONS.json").write_text(json.dumps({
        "torch": torch.__version__, "diffusers": diffusers.__version__,
        "transformers": transformers.__version__, "numpy": np.__version__,
        "upstream": "VAST-AI-Research/TripoSG fc5c409",
    }, indent=2) + "\n")
    print("fixtures written to", OUT)
