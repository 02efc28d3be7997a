"""Fifty jobs on one card: does anything grow? (issue 10: GPU memory, file handles, temp files)

Runs on a GPU device machine after compare.py has written the full-size random weights under
$WORK:
  WORK=/tmp/cmp OUT=$OUT python3 tools/gpu/leak.py carry/triposg IMAGE [JOBS]

Starts `triposg serve` on cuda:0 with the models kept resident, runs JOBS jobs (default 50;
octree depth 7, 20 steps; two candidates every fifth job, print files every tenth) one after
another, and after each records the card's memory (nvidia-smi), the server's open file handles
(/proc/PID/fd) and its resident memory, and any temporary file left in the outputs folder.
Writes $OUT/leak.json; exits non-zero if a job fails, a temporary file is left, the handle
count after the last job exceeds that after the fifth, or the card's memory after the last five
jobs exceeds that after jobs 5-9, by more than a small allowance. Memory is compared from job 5
on because allocator caching settles in the first jobs, and as the least reading of each five
because right after a job the driver's memory pool may still hold a freed decode's buffers
(512 MiB more after 2 of 20 jobs on 2026-12-03, gone after the next job); a leak stays and grows.
"""
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_client import OUT, gpu_memory, resident_server  # noqa: E402

BIN, IMAGE = sys.argv[1], sys.argv[2]
JOBS = int(sys.argv[3]) if len(sys.argv) > 3 else 50
ALLOWED_GROWTH_MIB = 64
ALLOWED_HANDLE_GROWTH = 4

server, outputs = resident_server(BIN, 5078, "leak")
pid = server.process.pid


def rss_mib():
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return None


rows = []
try:
    ready_s = server.wait_ready()
    print(json.dumps({"ready_s": ready_s}), flush=True)
    for n in range(1, JOBS + 1):
        fields = {"steps": "20", "octree_depth": "7", "seed": str(n), "print": "true" if n % 10 == 0 else "false",
                  "candidates": "2" if n % 5 == 0 else "1"}
        record = {}
        start = time.time()
        job = server.submit(IMAGE, fields)
        server.follow(job, record)
        seconds = round(time.time() - start, 2)
        timing = server.timing(job)
        temp = [str(p) for p in outputs.rglob(".*") if p.is_file()]
        rows.append({"job": n, "outcome": record.get("outcome"), "error": record.get("error"),
                     "seconds": seconds, "server": timing, "gpu_mib": gpu_memory()[0][1],
                     "handles": len(os.listdir(f"/proc/{pid}/fd")), "rss_mib": rss_mib(),
                     "temp_files": temp})
        print(json.dumps(rows[-1]), flush=True)
finally:
    server.stop()

fifth, last = rows[min(4, len(rows) - 1)], rows[-1]
result = {"ready_s": ready_s, "jobs": len(rows), "failed": [r for r in rows if r["outcome"] != "done"],
          "gpu_mib_after_5_and_last": [fifth["gpu_mib"], last["gpu_mib"]],
          "gpu_mib_least_of_jobs_5_9_and_last_5": [min(r["gpu_mib"] for r in rows[4:9] or rows[-1:]),
                                                   min(r["gpu_mib"] for r in rows[-5:])],
          "handles_after_5_and_last": [fifth["handles"], last["handles"]],
          "rss_mib_after_5_and_last": [fifth["rss_mib"], last["rss_mib"]],
          "temp_files_left": sorted({t for r in rows for t in r["temp_files"]}), "rows": rows}
(OUT / "leak.json").write_text(json.dumps(result, indent=1))
problems = []
if result["failed"]:
    problems.append(f"{len(result['failed'])} jobs failed")
if result["temp_files_left"]:
    problems.append(f"temporary files left: {result['temp_files_left'][:5]}")
first_gpu, last_gpu = result["gpu_mib_least_of_jobs_5_9_and_last_5"]
if last_gpu - first_gpu > ALLOWED_GROWTH_MIB:
    problems.append(f"GPU memory grew {first_gpu} -> {last_gpu} MiB (least after jobs 5-9 and after the last five)")
if last["handles"] - fifth["handles"] > ALLOWED_HANDLE_GROWTH:
    problems.append(f"open handles grew {fifth['handles']} -> {last['handles']}")
print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
if problems:
    sys.exit("; ".join(problems))
