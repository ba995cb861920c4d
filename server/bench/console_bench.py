#!/usr/bin/env python3
"""Benchmark: the web console under load (docs/benchmarks.md, "Console").

Starts the release console (`offboard serve`, fresh data folder) and the project's Stack-shaped
fault server, drives the console through its own HTTP API (the server functions the pages call
and `/jobs/{id}/events`), signed in as the console's first owner (console_process.py), and
prints Markdown tables:
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
import http.client
import os
import re
import statistics
import time

from console_process import (ENDED, Console, OFFBOARD, SITE_ROOT, cpu_seconds,
                             fault_server, gather_watchers, own_cpu_seconds, percentile,
                             require_binaries, wait_for_end, watch)

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


# ---------------------------------------------------------------- 1. pages


def page_latency(console):
    conn = http.client.HTTPConnection("127.0.0.1", console.port, timeout=30)
    # Signed in: the pages a team member sees (without the cookie they redirect to sign-in).
    headers = {"Accept-Encoding": BROWSER_ENCODINGS, "Cookie": console.cookie}
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


async def follow_job(console, job_id, watchers):
    latencies, ended = [], []
    step = max(1, watchers // MEASURED_WATCHERS)
    tasks = [asyncio.create_task(watch(console.port, job_id, console.cookie, i % step == 0,
                                       latencies, ended))
             for i in range(watchers)]
    job = await wait_for_end(console, job_id, None, JOB_TIMEOUT)
    await gather_watchers(tasks)
    return job, latencies, len(ended)


def watcher_run(watchers):
    fault = fault_server(JOB_USERS, LATENCY_MS)
    console = Console()
    try:
        console.connect(fault)
        preview = console.preview_everyone(JOB_USERS)
        cpu0, site_cpu0, client_cpu0 = console.cpu_seconds(), cpu_seconds(fault.proc.pid), own_cpu_seconds()
        started = time.monotonic()
        job = console.start_job(preview)
        job, latencies, ended = asyncio.run(follow_job(console, job["id"], watchers))
        wall = time.monotonic() - started
        cpu = console.cpu_seconds() - cpu0
        site_cpu = cpu_seconds(fault.proc.pid) - site_cpu0
        client_cpu = own_cpu_seconds() - client_cpu0
        finished = job["state"] in ENDED
        span = None
        if finished:
            began, ended_at = console.run_span(job["id"])
            span = ended_at - began if began and ended_at else None
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
    fault = fault_server(BIG_USERS, BIG_LATENCY_MS)
    console = Console()
    try:
        console.connect(fault)
        started = time.monotonic()
        preview = console.preview_everyone(BIG_USERS)
        preview_secs = time.monotonic() - started
        preview_rss = console.peak_rss_mb()
        started = time.monotonic()
        job = console.start_job(preview)
        job, _, _ = asyncio.run(follow_job(console, job["id"], 0))
        run_secs = time.monotonic() - started
        return {"preview": preview_secs, "preview_rss": preview_rss, "run": run_secs,
                "rss": console.peak_rss_mb(), "state": job["state"], "done": job["done"],
                "total": job["total"]}
    finally:
        console.stop()
        fault.stop()


def main():
    require_binaries()
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
