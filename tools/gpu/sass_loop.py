#!/usr/bin/env python3
"""Instruction mix of a kernel's hottest loop, from its SASS, without a GPU.

The flash kernel is limited by instruction issue (two warps per scheduler at 255 registers), so
the non-MMA instructions per key tile are what a change to it should cut; this counts them on
this machine, before spending device time. Static counts: a branch inside the loop (a rescale
taken rarely, the last tile's masking) counts as if always taken.

  nvcc -arch=sm_90 -cubin -o flash.cubin -Xptxas -v crates/triposg-model/src/fused/flash_attention.cu
  python3 tools/gpu/sass_loop.py flash.cubin flash_attention_f16_d128_w4 [--cuobjdump PATH]

cuobjdump is not in the nvcc wheel the CUDA build uses; PyPI's `nvidia-cuda-cuobjdump` wheel
has it (nvidia/cu13/bin/cuobjdump once unzipped).
"""
import argparse
import collections
import re
import subprocess

parser = argparse.ArgumentParser()
parser.add_argument("cubin")
parser.add_argument("function")
parser.add_argument("--cuobjdump", default="cuobjdump")
args = parser.parse_args()

sass = subprocess.run([args.cuobjdump, "-sass", "-fun", args.function, args.cubin],
                      capture_output=True, text=True, check=True).stdout
code = [(int(m.group(1), 16), m.group(2))
        for m in re.finditer(r"^\s+/\*([0-9a-f]+)\*/\s+(.*?)\s*;", sass, re.M)]
if not code:
    raise SystemExit(f"no SASS for {args.function} in {args.cubin}")

# Every backward branch closes a loop; the hottest is the one with the most tensor-core MMAs.
loops = []
for at, text in code:
    m = re.search(r"BRA (0x[0-9a-f]+)", text)
    if m and int(m.group(1), 16) < at:
        body = [t for a, t in code if int(m.group(1), 16) <= a <= at]
        loops.append((sum("HMMA" in t for t in body), len(body), body))
if not loops:
    raise SystemExit(f"{args.function} has no loop")
mmas, size, body = max(loops, key=lambda loop: loop[:2])
opcodes = collections.Counter(re.sub(r"^@!?U?P\w+\s+", "", t).split()[0].split(".")[0] for t in body)
print(f"{args.function}: hottest loop {size} instructions, {mmas} HMMA")
print(" ".join(f"{op}:{n}" for op, n in opcodes.most_common()))
