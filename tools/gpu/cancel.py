"""Jobs cancelled in the middle of their decode on a GPU: does the server stop them cleanly?

The decode keeps one batch on the card while it reads the one before back (read_back.rs), so a
cancellation drops a batch in flight. Runs on a GPU device machine after compare.py has written
the full-size random weights under $WORK, and best after e2e.py has added its sphere copy (with
WEIGHTS_ONLY=1 it stops there), which it then uses:
  WORK=/tmp/cmp OUT=$OUT python3 tools/gpu/cancel.py carry/triposg IMAGE [ROUNDS]

Starts `triposg serve` on cuda:0 with the models kept resident. Each round submits a job at
octree depth 9, cancels it once its decode has reported points, and then runs a whole job. Writes
$OUT/cancel.json; exits non-zero if a cancelled job ends any other way than cancelled, a whole
job fails, or the card's memory after the last two rounds exceeds that after the first two
(least readings) by more than a small allowance.
"""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_client import OUT, WORK, gpu_memory, resident_server  # noqa: E402

BIN, IMAGE = sys.argv[1], sys.argv[2]
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
ALLOWED_GROWTH_MIB = 64
FIELDS = {"steps": "20", "octree_depth": "9", "print": "false"}


def cancelled_in_decode(server, seed):
    """Submits a job, cancels it at its first decode progress, and returns how it ended."""
    job = server.submit(IMAGE, {**FIELDS, "seed": str(seed)})
    points, asked = 0, None
    for name, data in server.events(job):
        if name == "step" and data.get("stage") == "decode" and asked is None:
            points = data["done"]
            server.request(f"/api/jobs/{job}/cancel", b"")
            asked = time.time()
        if name in ("done", "failed", "cancelled"):
            return {"outcome": name, "points_when_asked": points,
                    "stopped_after_s": round(time.time() - asked, 3) if asked else None,
                    "error": data if name == "failed" else None}
    return {"outcome": "stream ended without a final event"}


rows = []
# e2e.py's sphere VAE where it is there: random weights decode a noisy field whose depth-9
# mesh took ~24 s per whole job, the sphere ~3 s.
# Its folder has no RMBG-1.4: the photo must come with its own transparency.
sphere = WORK / "e2e"
weights = sphere if (sphere / "TripoSG" / "vae" / "config.json").is_file() else WORK
server, _ = resident_server(BIN, 5079, "cancel", weights)
try:
    ready_s = server.wait_ready()
    print(json.dumps({"ready_s": ready_s}), flush=True)
    for n in range(1, ROUNDS + 1):
        row = {"round": n, "cancelled": cancelled_in_decode(server, n)}
        whole, start = {}, time.time()
        job = server.submit(IMAGE, {**FIELDS, "seed": str(100 + n)})
        server.follow(job, whole)
        row["whole_job"] = whole.get("outcome")
        row["whole_job_s"] = round(time.time() - start, 2)
        row["whole_job_server"] = server.timing(job)
        row["gpu_mib"] = gpu_memory()[0][1]
        rows.append(row)
        print(json.dumps(row), flush=True)
finally:
    server.stop()

# The least reading of the first two and the last two rounds: right after a job the driver's
# memory pool may still hold a freed decode's buffers (see leak.py).
first_gpu, last_gpu = (min(r["gpu_mib"] for r in rows[:2]), min(r["gpu_mib"] for r in rows[-2:]))
result = {"ready_s": ready_s, "weights": str(weights), "rounds": rows,
          "gpu_mib_least_of_first_and_last_2": [first_gpu, last_gpu]}
(OUT / "cancel.json").write_text(json.dumps(result, indent=1))
problems = [f"round {r['round']}: cancelled job ended {r['cancelled']['outcome']}"
            for r in rows if r["cancelled"]["outcome"] != "cancelled"]
problems += [f"round {r['round']}: whole job ended {r['whole_job']}" for r in rows if r["whole_job"] != "done"]
if last_gpu - first_gpu > ALLOWED_GROWTH_MIB:
    problems.append(f"GPU memory grew {first_gpu} -> {last_gpu} MiB")
if problems:
    sys.exit("; ".join(problems))
