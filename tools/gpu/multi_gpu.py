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
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

BIN, IMAGE = sys.argv[1], sys.argv[2]
JOBS = int(sys.argv[3]) if len(sys.argv) > 3 else 4
WORK = Path(os.environ.get("WORK", "/tmp/triposg-compare"))
OUT = Path(os.environ.get("OUT", "."))
PORT = 5077
BASE = f"http://127.0.0.1:{PORT}"
COOKIE = f"triposg_session={uuid.uuid4().hex}"

outputs = WORK / "multi_gpu_outputs"
server = subprocess.Popen(
    [BIN, "serve", "--port", str(PORT), "--devices", "0,1", "--residency", "keep",
     "--weights", str(WORK), "--outputs", str(outputs)],
    stderr=open(OUT / "multi_gpu_server.log", "w"))


def request(path, data=None, headers=None):
    req = urllib.request.Request(BASE + path, data=data, headers={"cookie": COOKIE, **(headers or {})})
    return urllib.request.urlopen(req, timeout=600)


samples = []
stop = threading.Event()


def sample_gpus():
    while not stop.is_set():
        q = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.used,utilization.gpu",
                            "--format=csv,noheader,nounits"], capture_output=True, text=True).stdout
        rows = [[int(x) for x in line.split(",")] for line in q.strip().splitlines()]
        samples.append({"t": time.time(), "gpus": rows})
        time.sleep(0.2)


def submit():
    boundary = uuid.uuid4().hex
    fields = {"steps": "50", "octree_depth": "8", "seed": "1", "print": "false"}
    body = b""
    for k, v in fields.items():
        body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.png\"\r\n"
             "Content-Type: image/png\r\n\r\n").encode() + Path(IMAGE).read_bytes() + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    r = request("/api/jobs", body, {"content-type": f"multipart/form-data; boundary={boundary}"})
    return json.loads(r.read())["id"]


def follow(job, record):
    stream = request(f"/api/jobs/{job}/events")
    name = None
    for raw in stream:
        line = raw.decode().strip()
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:") and name:
            data = json.loads(line[5:])
            if name == "started":
                record["device"] = data.get("device")
                record["started"] = time.time()
            if name in ("done", "failed", "cancelled"):
                record["outcome"] = name
                record["ended"] = time.time()
                if name != "done":
                    record["error"] = data
                return


try:
    for _ in range(600):
        try:
            if request("/readyz").status == 200:
                break
        except Exception:
            pass
        time.sleep(0.5)
    else:
        sys.exit("the server did not become ready in 5 minutes")
    sampler = threading.Thread(target=sample_gpus, daemon=True)
    sampler.start()
    t0 = time.time()
    ids = [submit() for _ in range(JOBS)]
    records = [{"id": i} for i in ids]
    threads = [threading.Thread(target=follow, args=(i, r)) for i, r in zip(ids, records)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    stop.set()
    sampler.join()
    info = json.loads(request("/api/info").read())
finally:
    server.terminate()
    server.wait(timeout=60)

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
