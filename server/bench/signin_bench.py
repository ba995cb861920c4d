"""A burst of password work against the release console: 300 sign-in attempts at once, and
32 bogus join/setup forms at once, while /healthz is timed (issue 18, item 9).

Every sign-in costs an argon2id check (about 19 MiB and tens of ms of a core); the console
runs them on its blocking pool, at most half the cores at once, so the other half keeps
answering. Bogus forms are refused before anything is hashed.

Scenarios (each on a fresh console, all on loopback):
  signins  300 sign-ins at once with wrong passwords for 300 emails, each from its own client
           address (the console is started with --trusted-proxy 127.0.0.1/32 and each request
           says X-Forwarded-For: a different address), so no address is slowed down and every
           attempt is hashed: the worst case for the machine;
  bogus    32 POST /join and 32 POST /setup at once with made-up codes (nothing to hash).

For each: /healthz latency p50/p99 while the burst runs (probed back to back from another
thread, each on a new connection), how long the burst took, and the console's peak memory
(VmHWM). Run:

    make build
    python3 server/bench/signin_bench.py
    # sizes: BENCH_SIGNINS=300 BENCH_BOGUS=32; another binary: OFFBOARD_BIN=…
"""
import concurrent.futures
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import console_process as cp  # noqa: E402

SIGNINS = int(os.environ.get("BENCH_SIGNINS", "300"))
BOGUS = int(os.environ.get("BENCH_BOGUS", "32"))


def form(fields):
    return urllib.parse.urlencode(fields).encode()


def attempt(console, path, fields, forwarded=None):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    status, _, _ = console.request("POST", path, body=form(fields), headers=headers, timeout=300)
    return status


def burst(console, jobs):
    """Runs `jobs` (callables) all at once while probing /healthz; the probe timings (ms) and
    failures, the burst's seconds and the statuses."""
    timings, failures = [], [0]
    done = threading.Event()

    def probe():
        while not done.is_set():
            started = time.perf_counter()
            try:
                status, _, _ = console.request("GET", "/healthz", timeout=30)
                if status == 200:
                    timings.append((time.perf_counter() - started) * 1000)
                else:
                    failures[0] += 1
            except OSError:
                failures[0] += 1
            time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        statuses = list(pool.map(lambda job: job(), jobs))
    took = time.perf_counter() - started
    done.set()
    prober.join()
    return timings, failures[0], took, statuses


def run(scenario):
    args = ["--trusted-proxy", "127.0.0.1/32"] if scenario == "signins" else []
    console = cp.Console(args=args, name=f"offboard-signin-{scenario}-")
    try:
        if scenario == "signins":
            jobs = [
                (lambda i=i: attempt(console, "/sign-in",
                                     {"email": f"user{i}@example.com", "password": "wrong guess"},
                                     forwarded=f"198.18.{i // 250}.{i % 250 + 1}"))
                for i in range(SIGNINS)
            ]
        else:
            fields = {"code": "made-up", "email": "x@example.com", "name": "X",
                      "password": "a long enough password", "again": "a long enough password"}
            jobs = [(lambda p=p: attempt(console, p, fields))
                    for p in ["/join"] * BOGUS + ["/setup"] * BOGUS]
        timings, failures, took, statuses = burst(console, jobs)
        answered = sum(1 for s in statuses if s in (200, 303))
        print(f"{scenario:<8} {len(jobs):>4} requests at once, answered {answered}, "
              f"in {took:6.2f} s;  /healthz during it: {len(timings)} probes, "
              f"p50 {cp.percentile(timings, 50):7.2f} ms p99 {cp.percentile(timings, 99):7.2f} ms "
              f"failed {failures};  peak memory {console.peak_rss_mb():.0f} MB", flush=True)
    finally:
        console.stop()


def main():
    if not os.path.exists(cp.OFFBOARD):
        raise SystemExit(f"{cp.OFFBOARD} is missing: run `make build` first")
    print(f"binary {cp.OFFBOARD}; {os.cpu_count()} cores", flush=True)
    for scenario in os.environ.get("BENCH_SCENARIOS", "signins,bogus").split(","):
        run(scenario.strip())


if __name__ == "__main__":
    main()
