"""Slowloris against the release console: 1,000 connections whose request headers never end,
held open while /healthz is timed and the first owner signs in (issue 18, item 8).

Scenarios (each on a fresh console with its default limits, all on loopback):
  none       no attack: the baseline;
  one        1,000 sockets from one address (127.0.0.2): the per-address cap (256) closes
             the rest at once;
  spread     1,000 sockets from 10 addresses (127.0.0.2-11, 100 each): all admitted, so the
             console holds 1,000 half-sent requests (and their file descriptors) while it
             answers everyone else.

For each: /healthz latency p50/p99 over BENCH_PROBES requests (each on a new connection, from
127.0.0.1), whether the sign-in works and how long it takes, and how many attack sockets the
console kept open. Run:

    make build   # or: cargo build --release -p server --features app/ssr
    python3 server/bench/slowloris_bench.py
    # another binary: OFFBOARD_BIN=target/debug/offboard python3 server/bench/slowloris_bench.py
    # sizes: BENCH_SOCKETS=1000 BENCH_PROBES=200 BENCH_SCENARIOS=none,one,spread

Loopback addresses other than 127.0.0.1 need Linux (the whole 127.0.0.0/8 is loopback there).
"""
import errno
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import console_process as cp  # noqa: E402

SOCKETS = int(os.environ.get("BENCH_SOCKETS", "1000"))
PROBES = int(os.environ.get("BENCH_PROBES", "200"))
SCENARIOS = os.environ.get("BENCH_SCENARIOS", "none,one,spread").split(",")


def raise_own_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def half_sent(port, sources):
    """One socket per entry of `sources` (a loopback address), each with headers that never
    end. Refused connections are kept too (they show up closed)."""
    head = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Waiting: ".encode()
    sockets = []
    for source in sources:
        s = socket.socket()
        s.bind((source, 0))
        try:
            s.connect(("127.0.0.1", port))
            s.send(head)
        except OSError:
            pass
        s.setblocking(False)
        sockets.append(s)
    return sockets


def still_open(sockets):
    """How many of `sockets` the console has not closed."""
    count = 0
    for s in sockets:
        try:
            data = s.recv(1024)
            if data:
                count += 1  # answered something but not closed yet
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                count += 1
    return count


def probe(console):
    """/healthz timings in ms (each on a new connection) and failures."""
    timings, failures = [], 0
    for _ in range(PROBES):
        started = time.perf_counter()
        try:
            status, _, _ = console.request("GET", "/healthz", timeout=10)
            if status != 200:
                failures += 1
                continue
        except OSError:
            failures += 1
            continue
        timings.append((time.perf_counter() - started) * 1000)
    return timings, failures


def sources_for(scenario):
    if scenario == "one":
        return ["127.0.0.2"] * SOCKETS
    if scenario == "spread":
        return [f"127.0.0.{2 + i % 10}" for i in range(SOCKETS)]
    return []


def run(scenario):
    console = cp.Console(name=f"offboard-slowloris-{scenario}-")
    try:
        attack = half_sent(console.port, sources_for(scenario))
        # Let the console take (or refuse) every connection before measuring.
        time.sleep(1)
        held = still_open(attack)
        timings, failures = probe(console)
        started = time.perf_counter()
        try:
            console.sign_in()
            signed_in = f"yes, {(time.perf_counter() - started) * 1000:.0f} ms"
        except (RuntimeError, OSError) as e:
            signed_in = f"NO ({str(e)[:80]})"
        held_after = still_open(attack)
        for s in attack:
            s.close()
        print(f"{scenario:<7} attack sockets {len(attack):>5}  held by the console {held:>5} "
              f"(after probing {held_after:>5})  /healthz p50 {cp.percentile(timings, 50):6.2f} ms "
              f"p99 {cp.percentile(timings, 99):6.2f} ms  failed {failures}/{PROBES}  "
              f"sign-in {signed_in}", flush=True)
    finally:
        console.stop()


def main():
    if not os.path.exists(cp.OFFBOARD):
        raise SystemExit(f"{cp.OFFBOARD} is missing: run `make build` first")
    raise_own_file_limit()
    print(f"binary {cp.OFFBOARD}; {SOCKETS} sockets, {PROBES} probes", flush=True)
    for scenario in SCENARIOS:
        run(scenario.strip())


if __name__ == "__main__":
    main()
