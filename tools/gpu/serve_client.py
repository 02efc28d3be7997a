"""A `triposg serve` process and a browser session against it, for the GPU scripts."""
import json
import os
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

# compare.py's weights, and where a script's results go.
WORK = Path(os.environ.get("WORK", "/tmp/triposg-compare"))
OUT = Path(os.environ.get("OUT", "."))


class Server:
    """Starts `BIN serve` on PORT with the given extra arguments; `stop()` ends it."""

    def __init__(self, binary, port, args, log):
        self.base = f"http://127.0.0.1:{port}"
        self.cookie = f"triposg_session={uuid.uuid4().hex}"
        self.started = time.time()
        self.process = subprocess.Popen([binary, "serve", "--port", str(port), *args],
                                        stderr=open(log, "w"))

    def request(self, path, data=None, headers=None):
        req = urllib.request.Request(self.base + path, data=data,
                                     headers={"cookie": self.cookie, **(headers or {})})
        return urllib.request.urlopen(req, timeout=600)

    def wait_ready(self, seconds=300):
        """Waits for /readyz; returns the seconds since the server was started."""
        for _ in range(seconds * 2):
            try:
                if self.request("/readyz").status == 200:
                    return round(time.time() - self.started, 2)
            except Exception:
                pass
            time.sleep(0.5)
        raise SystemExit(f"the server did not become ready in {seconds} s")

    def submit(self, image, fields):
        boundary = uuid.uuid4().hex
        body = b""
        for k, v in fields.items():
            body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.png\"\r\n"
                 "Content-Type: image/png\r\n\r\n").encode() + Path(image).read_bytes() + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        r = self.request("/api/jobs", body, {"content-type": f"multipart/form-data; boundary={boundary}"})
        return json.loads(r.read())["id"]

    def events(self, job):
        """Yields (name, data) of the job's events, the current state first, until its final one."""
        name = None
        for raw in self.request(f"/api/jobs/{job}/events"):
            line = raw.decode().strip()
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:") and name:
                yield name, json.loads(line[5:])
                if name in ("done", "failed", "cancelled"):
                    return

    def follow(self, job, record):
        """Reads the job's event stream into `record` until its final event."""
        for name, data in self.events(job):
            if name == "started":
                record["device"] = data.get("device")
                record["started"] = time.time()
            if name in ("done", "failed", "cancelled"):
                record["outcome"] = name
                record["ended"] = time.time()
                if name != "done":
                    record["error"] = data

    def timing(self, job):
        """Where the server's time went on a finished job: queued, running, and each stage (the
        rest of a run is the worker's own work: files, the job store)."""
        view = json.loads(self.request(f"/api/jobs/{job}").read())
        ms = [view.get(k) for k in ("created_ms", "started_ms", "finished_ms")]
        timing = {"queued_s": (ms[1] - ms[0]) / 1000, "running_s": (ms[2] - ms[1]) / 1000} if all(ms) else {}
        stages = (view.get("result") or {}).get("stage_seconds") or {}
        timing["stages_s"] = {k: round(v, 3) for k, v in stages.items()}
        return timing

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


def gpu_memory():
    """Memory used on each card, MiB, from nvidia-smi."""
    q = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.used,utilization.gpu",
                        "--format=csv,noheader,nounits"], capture_output=True, text=True).stdout
    return [[int(x) for x in line.split(",")] for line in q.strip().splitlines()]


def resident_server(binary, port, name, weights=WORK):
    """`binary serve` on cuda:0 with the weights under `weights` (compare.py's by default) kept
    resident, its outputs in $WORK/<name>_outputs and its log in $OUT/<name>_server.log;
    returns it and the outputs."""
    outputs = WORK / f"{name}_outputs"
    server = Server(binary, port, ["--devices", "0", "--residency", "keep", "--weights", str(weights),
                                   "--outputs", str(outputs)], OUT / f"{name}_server.log")
    return server, outputs
