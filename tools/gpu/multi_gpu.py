"""Several GPUs on one queue: `triposg serve --devices 0,1` on a machine with two cards.

Runs on a two-GPU device machine after compare.py has written the full-size random weights
under $WORK:
  WORK=/tmp/cmp OUT=$OUT python3 tools/gpu/multi_gpu.py carry/triposg IMAGE [JOBS]

Starts the server on both cards, submits JOBS jobs (default 4, octree depth 8) from one browser
session at once, follows each job's event stream, samples every card's memory and utilisation
with nvidia-smi, and writes $OUT/multi_gpu.json: each job's outcome and (when its stream was
open before a worker took it) device, and how often both cards were busy at the same moment.
Exits non-zero if a job fails or the two cards never worked at the same time.
"""
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_client import Server, gpu_memory  # noqa: E402

BIN, IMAGE = sys.argv[1], sys.argv[2]
JOBS = int(sys.argv[3]) if len(sys.argv) > 3 else 4
WORK = Path(os.environ.get("WORK", "/tmp/triposg-compare"))
OUT = Path(os.environ.get("OUT", "."))
FIELDS = {"steps": "50", "octree_depth": "8", "seed": "1", "print": "false"}

server = Server(BIN, 5077, ["--devices", "0,1", "--residency", "keep", "--weights", str(WORK),
                            "--outputs", str(WORK / "multi_gpu_outputs")], OUT / "multi_gpu_server.log")
samples = []
stop = threading.Event()


def sample_gpus():
    while not stop.is_set():
        samples.append({"t": time.time(), "gpus": gpu_memory()})
        time.sleep(0.2)


try:
    server.wait_ready()
    sampler = threading.Thread(target=sample_gpus, daemon=True)
    sampler.start()
    t0 = time.time()
    ids = [server.submit(IMAGE, FIELDS) for _ in range(JOBS)]
    records = [{"id": i} for i in ids]
    threads = [threading.Thread(target=server.follow, args=(i, r)) for i, r in zip(ids, records)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    stop.set()
    sampler.join()
    info = json.loads(server.request("/api/info").read())
finally:
    server.stop()

for r in records:
    for k in ("started", "ended"):
        if k in r:
            r[k] = round(r[k] - t0, 2)
# A job taken before its stream opened has no "started" event here: the cards' own samples
# say whether both worked at once.
devices = sorted({r["device"] for r in records if "device" in r})
both_busy = sum(1 for s in samples if len(s["gpus"]) > 1 and all(util > 0 for _, _, util in s["gpus"]))
busy = {}
for s in samples:
    for index, mem, util in s["gpus"]:
        g = busy.setdefault(index, {"peak_mib": 0, "samples_busy": 0})
        g["peak_mib"] = max(g["peak_mib"], mem)
        g["samples_busy"] += util > 0
result = {"jobs": records, "devices_seen_in_streams": devices, "samples_both_cards_busy": both_busy,
          "wall_s": round(wall, 2), "gpus": busy, "samples": len(samples), "api_info": info}
print(json.dumps(result, indent=1))
(OUT / "multi_gpu.json").write_text(json.dumps(result, indent=1))
failed = [r for r in records if r.get("outcome") != "done"]
if failed or both_busy == 0:
    sys.exit(f"failed jobs {failed}, or the two cards never worked at once ({both_busy} samples)")
