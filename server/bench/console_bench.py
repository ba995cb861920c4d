#!/usr/bin/env python3
"""Benchmark: the web console under load (docs/benchmarks.md, "Console").

Starts the release console (`offboard serve`, fresh data folder) and the project's Stack-shaped
fault server, drives the console through its own HTTP API (the server functions the pages call
and `/jobs/{id}/events`), and prints Markdown tables:
  1. page latency on one kept-alive connection: `GET /`, `GET /preview`, the stylesheet
     (median and p95 of PAGE_REQUESTS each), plus the bytes the WASM costs a browser;
  2. a 10,000-user job (site at 20 ms a request) with 0, 20 and 200 watchers on the live log:
     job time (from the job's `running` event to its last, as the server stamped them), users/s, delivery
     latency from a result being stored (its `at`) to a watcher reading it (p50/p99, from the
     watchers that parse every event: all of them up to 20, then 20 spread over the rest),
     console CPU seconds during the job and peak RSS;
  3. a 50,000-user site: preview of every user, then the run (time of each, peak RSS).
Environment: OFFBOARD_BIN, FAULT_SERVER_BIN, SITE_ROOT (defaults: this checkout's release
build), BENCH_SCENARIOS (comma list of pages,watchers,big; default all),
BENCH_WATCHERS (default 0,20,200), BENCH_JOB_USERS (10000), BENCH_BIG_USERS (50000),
BENCH_BIG_LATENCY_MS (5), BENCH_JOB_TIMEOUT (seconds, 600). No test asserts a time.
Every process listens on 127.0.0.1 and is stopped by its PID.
"""
import asyncio
import datetime
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

import fault_site

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/offboard/target"))
OFFBOARD = os.environ.get("OFFBOARD_BIN", os.path.join(TARGET, "release", "offboard"))
FAULT_SERVER = os.environ.get("FAULT_SERVER_BIN", os.path.join(TARGET, "release", "stack-fault-server"))
SITE_ROOT = os.environ.get("SITE_ROOT", os.path.join(REPO, "target", "site"))
TOKEN = fault_site.TOKEN
LATENCY_MS = 20
PAGE_REQUESTS = int(os.environ.get("BENCH_PAGE_REQUESTS", "200"))
JOB_USERS = int(os.environ.get("BENCH_JOB_USERS", "10000"))
BIG_USERS = int(os.environ.get("BENCH_BIG_USERS", "50000"))
BIG_LATENCY_MS = int(os.environ.get("BENCH_BIG_LATENCY_MS", "5"))
JOB_TIMEOUT = float(os.environ.get("BENCH_JOB_TIMEOUT", "600"))
WATCHERS = [int(n) for n in os.environ.get("BENCH_WATCHERS", "0,20,200").split(",")]
SCENARIOS = os.environ.get("BENCH_SCENARIOS", "pages,watchers,big").split(",")
MEASURED_WATCHERS = 20
BROWSER_ENCODINGS = "gzip, deflate, br, zstd"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def own_cpu_seconds():
    t = os.times()
    return t.user + t.system


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def FaultServer(users, latency_ms):
    """The simulated site with `users` users (see fault_site.py)."""
    return fault_site.FaultServer(FAULT_SERVER, latency_ms, "--users", str(users))


class Console:
    """`offboard serve` on a free port with its own data folder."""

    def __init__(self):
        self.data = tempfile.mkdtemp(prefix="offboard-bench-")
        self.port = free_port()
        self.log = open(os.path.join(self.data, "server.log"), "w")
        env = dict(os.environ, OFFBOARD_ADDR=f"127.0.0.1:{self.port}", OFFBOARD_DATA_DIR=self.data,
                   LEPTOS_SITE_ROOT=SITE_ROOT, RUST_LOG="warn",
                   # The fault server speaks plain http on loopback (refused by default).
                   OFFBOARD_ALLOW_HTTP_LOOPBACK_SITES="true")
        self.proc = subprocess.Popen([OFFBOARD, "serve"], env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the console did not start")

    def call(self, name, **fields):
        """A server function, as the pages call it (form-encoded POST, JSON answer)."""
        body = urllib.parse.urlencode({k: v for k, v in fields.items() if v is not None})
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        c.request("POST", f"/api/{name}", body=body,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        text = r.read().decode()
        if r.status != 200:
            raise RuntimeError(f"{name}: HTTP {r.status}: {text[:500]}")
        return json.loads(text)

    def cpu_seconds(self):
        return cpu_seconds(self.proc.pid)

    def peak_rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def connect(console, fault):
    console.call("save_connection", site_url=fault.url, scim_base_url=f"{fault.url}/v2",
                 token=TOKEN, operator_email="")


def preview_everyone(console, users):
    text = "\n".join(f"user{i}@example.com" for i in range(1, users + 1))
    return console.call("preview_text", file_name="bench.txt", text=text, action="delete",
                        demote="false")


def stamp(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------- 1. pages


def page_latency(console):
    conn = http.client.HTTPConnection("127.0.0.1", console.port, timeout=30)
    headers = {"Accept-Encoding": BROWSER_ENCODINGS}
    conn.request("GET", "/", headers=headers)
    home = conn.getresponse().read().decode()
    css = re.search(r'<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"|<link[^>]*href="([^"]+\.css)"', home)
    css = css.group(1) or css.group(2)
    wasm = re.search(r'href="([^"]+\.wasm)"', home)
    rows = []
    for path in ["/", "/preview", css]:
        times = []
        for _ in range(PAGE_REQUESTS):
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            r.read()
            times.append((time.perf_counter() - started) * 1000)
        rows.append((path, statistics.median(times), percentile(times, 95)))
    sizes = {}
    if wasm:
        for label, accept in [("raw", "identity"), ("browser", BROWSER_ENCODINGS)]:
            conn.request("GET", wasm.group(1), headers={"Accept-Encoding": accept})
            r = conn.getresponse()
            sizes[label] = (len(r.read()), r.getheader("Content-Encoding") or "none",
                            r.getheader("Cache-Control") or "none")
    conn.close()
    return rows, sizes


# ---------------------------------------------------------------- 2. watchers


async def watch(port, job_id, measure, latencies, ended):
    """One watcher on the live log. `measure`: parse every event (else just drain the bytes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Accept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    tail = b""
    try:
        if measure:
            kind = None
            while True:
                line = await reader.readline()
                if not line:
                    break
                if line.startswith(b"event: "):
                    kind = line[7:].strip()
                elif line.startswith(b"data: ") and kind == b"job":
                    now = time.time()
                    event = json.loads(line[6:])
                    if event.get("result") is not None:
                        latencies.append(now - stamp(event["at"]))
                elif line.startswith(b"data: ") and kind == b"end":
                    ended.append(time.time())
                    break
        else:
            while True:
                chunk = await reader.read(1 << 16)
                if not chunk:
                    break
                if b"event: end" in tail + chunk:
                    ended.append(time.time())
                    break
                tail = chunk[-16:]
    finally:
        writer.close()


async def follow_job(console, job_id, watchers):
    latencies, ended = [], []
    step = max(1, watchers // MEASURED_WATCHERS)
    tasks = [asyncio.create_task(watch(console.port, job_id, i % step == 0, latencies, ended))
             for i in range(watchers)]
    deadline = time.monotonic() + JOB_TIMEOUT
    job = None
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        job = await asyncio.to_thread(console.call, "job", job_id=job_id)
        if job["state"] not in ("queued", "running", "cancelling"):
            break
    if tasks:
        done, pending = await asyncio.wait(tasks, timeout=30)
        for t in pending:
            t.cancel()
    return job, latencies, len(ended)


def run_span(console, job_id):
    """Seconds from the job's `running` event to its final one, read from its log after the end
    (the log's stamps have milliseconds; JobView's started_at/finished_at only seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", console.port, timeout=120)
    conn.request("GET", f"/jobs/{job_id}/events")
    started = ended = None
    for line in conn.getresponse().read().decode().splitlines():
        if not line.startswith("data: ") or '"seq"' not in line:
            continue
        event = json.loads(line[6:])
        if event.get("state") == "running" and started is None:
            started = stamp(event["at"])
        elif event.get("state") in ("finished", "stopped", "failed"):
            ended = stamp(event["at"])
    conn.close()
    return ended - started if started and ended else None


def watcher_run(watchers):
    fault = FaultServer(JOB_USERS, LATENCY_MS)
    console = Console()
    try:
        connect(console, fault)
        preview = preview_everyone(console, JOB_USERS)
        cpu0, site_cpu0, client_cpu0 = console.cpu_seconds(), cpu_seconds(fault.proc.pid), own_cpu_seconds()
        started = time.monotonic()
        job = console.call("start_job", preview_id=preview["id"], typed=preview["phrase"])
        job, latencies, ended = asyncio.run(follow_job(console, job["id"], watchers))
        wall = time.monotonic() - started
        cpu = console.cpu_seconds() - cpu0
        site_cpu = cpu_seconds(fault.proc.pid) - site_cpu0
        client_cpu = own_cpu_seconds() - client_cpu0
        finished = job["state"] not in ("queued", "running", "cancelling")
        span = run_span(console, job["id"]) if finished else None
        # Cut off: users/s so far, from the start request.
        seconds = span or wall
        return {
            "watchers": watchers, "finished": finished, "state": job["state"],
            "done": job["done"], "total": job["total"], "seconds": seconds,
            "rate": job["done"] / seconds if seconds else 0, "cpu": cpu,
            "site_cpu": site_cpu, "client_cpu": client_cpu,
            "rss": console.peak_rss_mb(), "p50": percentile(latencies, 50) * 1000,
            "p99": percentile(latencies, 99) * 1000, "samples": len(latencies),
            "ended": ended,
        }
    finally:
        console.stop()
        fault.stop()


# ---------------------------------------------------------------- 3. big site


def big_run():
    fault = FaultServer(BIG_USERS, BIG_LATENCY_MS)
    console = Console()
    try:
        connect(console, fault)
        started = time.monotonic()
        preview = preview_everyone(console, BIG_USERS)
        preview_secs = time.monotonic() - started
        preview_rss = console.peak_rss_mb()
        started = time.monotonic()
        job = console.call("start_job", preview_id=preview["id"], typed=preview["phrase"])
        job, _, _ = asyncio.run(follow_job(console, job["id"], 0))
        run_secs = time.monotonic() - started
        return {"preview": preview_secs, "preview_rss": preview_rss, "run": run_secs,
                "rss": console.peak_rss_mb(), "state": job["state"], "done": job["done"],
                "total": job["total"]}
    finally:
        console.stop()
        fault.stop()


def main():
    for path in (OFFBOARD, FAULT_SERVER):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run `make build` first")
    print(f"console: {OFFBOARD}\nsite: {SITE_ROOT}\nload average at start: {os.getloadavg()}\n")
    if "pages" in SCENARIOS:
        console = Console()
        try:
            rows, sizes = page_latency(console)
        finally:
            console.stop()
        print(f"| page (one kept-alive connection, {PAGE_REQUESTS} requests) | median | p95 |")
        print("|---|---|---|")
        for path, median, p95 in rows:
            print(f"| `GET {path}` | {median:.2f} ms | {p95:.2f} ms |")
        for label, (size, encoding, cache) in sizes.items():
            print(f"\nWASM, {label} Accept-Encoding: {size} bytes sent, Content-Encoding {encoding}, "
                  f"Cache-Control {cache}")
        print()
    if "watchers" in SCENARIOS:
        print(f"| {JOB_USERS:,}-user job, site at {LATENCY_MS} ms | job time | users/s | "
              "delivery p50 | delivery p99 | console CPU | peak RSS | CPU of site / bench client | result |")
        print("|---|---|---|---|---|---|---|---|---|")
        base = None
        for n in WATCHERS:
            r = watcher_run(n)
            base = base or (r["rate"] if r["finished"] and n == 0 else None)
            # Compared by users/s, so a run cut off before its end compares too.
            slower = (f", {100 * (base / r['rate'] - 1):+.0f} % time vs 0 watchers"
                      if base and n and r["rate"] else "")
            result = (f"{r['state']} {r['done']}/{r['total']}" +
                      ("" if r["finished"] else f" (cut off after {JOB_TIMEOUT:.0f} s)") +
                      (f", {r['ended']}/{n} watchers saw the end" if n else "") + slower)
            delivery = (f"{r['p50']:.1f} ms | {r['p99']:.1f} ms" if r["samples"] else "– | –")
            print(f"| {n} watchers | {r['seconds']:.1f} s | {r['rate']:.0f} | {delivery} | "
                  f"{r['cpu']:.1f} s | {r['rss']:.0f} MB | {r['site_cpu']:.1f} s / {r['client_cpu']:.1f} s | "
                  f"{result} |", flush=True)
        print()
    if "big" in SCENARIOS:
        r = big_run()
        print(f"| {BIG_USERS:,}-user site, {BIG_LATENCY_MS} ms a request | time | peak RSS so far |")
        print("|---|---|---|")
        print(f"| preview of every user | {r['preview']:.1f} s | {r['preview_rss']:.0f} MB |")
        print(f"| run ({r['state']}, {r['done']}/{r['total']}) | {r['run']:.1f} s | {r['rss']:.0f} MB |")
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
