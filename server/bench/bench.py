#!/usr/bin/env python3
"""Benchmark: Offboard's engine against the old script's behaviour, on the same simulated site.

Starts the project's Stack-shaped fault server (release build) with 20 ms added latency on
every request and measures, wall clock, each a fresh server:
  1. deleting the ~400 deactivated users of a 2,000-user site: `offboard delete --deactivated`
     vs the old script model (server/bench/old_script_model.py);
  2. the same under a 20 requests/s rate limit (the server answers 429 past it): does each
     delete exactly the expected set?
  3. listing a 50,000-user site (`offboard delete --deactivated --dry-run`: list + resolve).
Prints a Markdown table with wall time, requests/s, peak concurrency seen by the server and the
theoretical floor (requests x latency / concurrency). `make bench` runs it; figures recorded in
docs/benchmarks.md. Everything listens on 127.0.0.1 and is stopped by PID.
"""
import os
import subprocess
import sys
import tempfile
import time

import fault_site

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/offboard/target"))
OFFBOARD = os.path.join(TARGET, "release", "offboard")
FAULT_SERVER = os.path.join(TARGET, "release", "stack-fault-server")
OLD_SCRIPT = os.path.join(HERE, "old_script_model.py")
TOKEN = fault_site.TOKEN
LATENCY_MS = 20
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
LISTING_CONCURRENCY = 20  # engine::listing::ListingOptions::default()
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))


def FaultServer(*flags):
    """The simulated site with this benchmark's latency (see fault_site.py)."""
    return fault_site.FaultServer(FAULT_SERVER, LATENCY_MS, *flags)


def timed(cmd, env=None):
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return time.monotonic() - started, proc


def run_offboard(server, out_dir, *extra):
    env = dict(os.environ, OFFBOARD_TOKEN=TOKEN)
    cmd = [OFFBOARD, "delete", "--scim-base-url", f"{server.url}/v2", "--url", server.url,
           "--deactivated", "--yes", "--concurrency", str(CONCURRENCY), "--out", out_dir, *extra]
    return timed(cmd, env)


def run_old_script(server, out_dir):
    os.makedirs(out_dir, exist_ok=True)  # the script writes into an existing folder only
    cmd = [sys.executable, OLD_SCRIPT, "--token", TOKEN, "--url", server.url,
           "--scim-url", f"{server.url}/api/scim/v2/users", "--deactivated",
           "--out-dir", out_dir, "--summary-json", os.path.join(out_dir, "summary.json")]
    return timed(cmd)


def expected_deactivated(n_users, every):
    return {str(1000 + i) for i in range(1, n_users + 1) if i % every == 0}


def row(name, seconds, state, concurrency, note="", listing_concurrency=None):
    reqs = sum(state["requests"].values())
    pages = state["requests"].get("LIST", 0)
    listing_concurrency = listing_concurrency or concurrency
    floor = (pages / listing_concurrency + (reqs - pages) / concurrency) * LATENCY_MS / 1000
    return (f"| {name} | {seconds:.2f} s | {reqs} | {reqs / seconds:.0f} | "
            f"{state['peak_in_flight']} | {floor:.2f} s | {note} |")


def main():
    for path in (OFFBOARD, FAULT_SERVER):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run `make build` first")
    lines = ["| scenario | wall time | requests | requests/s | peak concurrency | floor | result |",
             "|---|---|---|---|---|---|---|"]
    failures = []
    expected = expected_deactivated(2000, 5)
    with tempfile.TemporaryDirectory() as tmp:
        # 1. Delete the deactivated users of a 2,000-user site (median of REPEATS fresh runs).
        ob_runs, old_runs = [], []
        for k in range(REPEATS):
            with FaultServer("--users", "2000", "--deactivated-every", "5") as s:
                secs, proc = run_offboard(s, os.path.join(tmp, f"ob1-{k}"))
                st = s.state()
                ok = set(st["deleted"]) == expected and proc.returncode == 0
                failures += [] if ok else [f"offboard deleted {len(st['deleted'])}, expected {len(expected)}: {proc.stderr[-2000:]}"]
                ob_runs.append((secs, st, ok))
            with FaultServer("--users", "2000", "--deactivated-every", "5") as s:
                secs, proc = run_old_script(s, os.path.join(tmp, f"old1-{k}"))
                old_runs.append((secs, s.state()))
        ob_secs, st, ok = sorted(ob_runs, key=lambda r: r[0])[len(ob_runs) // 2]
        lines.append(row(f"Offboard: delete 400 deactivated of 2,000 (concurrency {CONCURRENCY}; median of {REPEATS})",
                         ob_secs, st, CONCURRENCY, f"deleted {len(st['deleted'])}/{len(expected)}, exact set: {ok}",
                         LISTING_CONCURRENCY))
        old_secs, st = sorted(old_runs, key=lambda r: r[0])[len(old_runs) // 2]
        lines.append(row(f"old script model: same site (median of {REPEATS})", old_secs, st, 1,
                         f"deleted {len(st['deleted'])}/{len(expected)}"))
        # 2. Under a 20 requests/s limit.
        with FaultServer("--users", "2000", "--deactivated-every", "5", "--rate-limit", "20") as s:
            secs, proc = run_offboard(s, os.path.join(tmp, "ob2"))
            st = s.state()
            ok = set(st["deleted"]) == expected and proc.returncode == 0
            failures += [] if ok else [f"throttled offboard deleted {len(st['deleted'])}: {proc.stderr[-2000:]}"]
            lines.append(row("Offboard: same, site limited to 20 requests/s", secs, st, CONCURRENCY,
                             f"deleted {len(st['deleted'])}/{len(expected)}, 429s: {st['replies_by_status'].get('429', 0)}, exact set: {ok}",
                             LISTING_CONCURRENCY))
        with FaultServer("--users", "2000", "--deactivated-every", "5", "--rate-limit", "20") as s:
            secs, proc = run_old_script(s, os.path.join(tmp, "old2"))
            st = s.state()
            lines.append(row("old script model: same, 20 requests/s", secs, st, 1,
                             f"deleted {len(st['deleted'])}/{len(expected)} (429s: {st['replies_by_status'].get('429', 0)})"))
        # 3. List a 50,000-user site (list + resolve, nothing deleted).
        with FaultServer("--users", "50000", "--deactivated-every", "5") as s:
            secs, proc = run_offboard(s, os.path.join(tmp, "ob3"), "--dry-run")
            st = s.state()
            ok = proc.returncode == 0 and not st["deleted"]
            failures += [] if ok else [f"listing failed: {proc.stderr[-2000:]}"]
            lines.append(row("Offboard: list 50,000 users (dry run)", secs, st, LISTING_CONCURRENCY,
                             f"pages: {st['requests'].get('LIST', 0)}, deleted: {len(st['deleted'])}"))
    print("\n".join(lines))
    print(f"\nDeleting deactivated users: Offboard {ob_secs:.2f} s vs old script {old_secs:.2f} s "
          f"= {old_secs / ob_secs:.1f}x faster (added latency {LATENCY_MS} ms a request).")
    if failures:
        print("\nFAILED:\n" + "\n".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
