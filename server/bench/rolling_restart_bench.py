#!/usr/bin/env python3
"""Benchmark: the pause a person watching a run sees during a rolling restart of both replicas
(docs/benchmarks.md, "Rolling restart of two replicas").

Starts a throwaway PostgreSQL 15 cluster (pg_cluster.py) and, per round, a fresh database, two
release consoles on it (`offboard serve --database-url postgres://…`, same `--secret-key`,
default 30 s lease) and one project fault server (`stack-fault-server`, BENCH_LATENCY_MS (50)
added to every request). A run deleting BENCH_USERS (1000) users starts on replica A, and a
watcher follows its live log (`GET /jobs/{id}/events`) the way the page's EventSource does
behind a proxy: when the stream ends it reconnects at once, with `Last-Event-ID`, to whichever
replica answers (the proxy's part: the other one).
  - "no restart": the run goes to its end undisturbed.
  - "rolling restart": once a quarter of the users are done, A is told to stop (SIGTERM),
    waited for, started again on its data folder and database (it is ready when `/readyz` is
    200); then the same for B. Each replica hands its run back as it stops, so the other takes
    it over from the run's journal.
Printed (Markdown): total run time (first request to the final event), the longest gap
between two consecutive results the watcher received, the watcher's reconnections, how long
each SIGTERM took to end the process, and checks: every user deleted once, no DELETE twice.
Environment: OFFBOARD_BIN, FAULT_SERVER_BIN, SITE_ROOT (as console_bench.py), OFFBOARD_PG_BIN,
BENCH_USERS, BENCH_LATENCY_MS, BENCH_ROUNDS (3). No test asserts a time. Every process listens
on 127.0.0.1 and is stopped by its PID.
"""
import json
import os
import socket
import statistics
import subprocess
import threading
import time

from console_process import (OFFBOARD, SITE_ROOT, Console, end_process, fault_server,
                             require_binaries, stamp)
from pg_cluster import PgCluster

USERS = int(os.environ.get("BENCH_USERS", "1000"))
LATENCY_MS = int(os.environ.get("BENCH_LATENCY_MS", "50"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECRET_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def plain_users(count):
    """Users the fault server lets a run delete (no moderators, admins, community creator)."""
    users, i = [], 0
    while len(users) < count:
        i += 1
        if i % 50 not in (7, 17) and i % 100 not in (42, 98, 99):
            users.append(i)
    return users


class Watcher(threading.Thread):
    """A browser following the run: reads SSE events, reconnects to whichever replica answers
    when a stream ends, resuming after the last event id. Records each result's arrival."""

    def __init__(self, job_id, replicas):
        super().__init__(daemon=True)
        self.job_id = job_id
        self.replicas = replicas  # a list the restarts update in place
        self.arrivals = []
        self.reconnects = 0
        self.last_id = None
        self.done = threading.Event()

    def run(self):
        turn = 0
        while not self.done.is_set():
            console = self.replicas[turn % len(self.replicas)]
            turn += 1
            try:
                if self.follow(console):
                    self.done.set()
                    return
            except OSError:
                pass  # refused or cut: the proxy tries the other replica
            self.reconnects += 1

    def follow(self, console):
        """One stream; True once the run's end arrived."""
        with socket.create_connection(("127.0.0.1", console.port), timeout=60) as s:
            resume = f"Last-Event-ID: {self.last_id}\r\n" if self.last_id else ""
            # HTTP/1.0: the answer is not chunked, so SSE lines arrive whole.
            s.sendall((f"GET /jobs/{self.job_id}/events HTTP/1.0\r\nHost: 127.0.0.1:{console.port}\r\n"
                       f"Cookie: {console.cookie}\r\nAccept: text/event-stream\r\n{resume}\r\n").encode())
            f = s.makefile("rb")
            status = f.readline()
            if b" 200 " not in status:
                time.sleep(0.05)
                return False
            while f.readline() not in (b"\r\n", b""):
                pass
            event = None
            while True:
                line = f.readline()
                if not line:
                    return False
                line = line.decode().rstrip("\r\n")
                if line.startswith("id: "):
                    self.last_id = line[4:]
                elif line.startswith("event: "):
                    event = line[7:]
                    if event == "end":
                        return True
                elif line.startswith("data: ") and event == "job":
                    # State changes carry `"result": null`; only a user's result counts.
                    if json.loads(line[6:]).get("result"):
                        self.arrivals.append(time.monotonic())


def start_replica(url):
    args = ["--database-url", url, "--secret-key", SECRET_KEY]
    return Console(args, name="offboard-rolling-")


def restart(replicas, index, url, exits):
    """SIGTERM replica `index`, wait for it to end (timed), start a new one on the database."""
    old = replicas[index]
    began = time.monotonic()
    end_process(old.proc, timeout=60)
    exits.append((time.monotonic() - began, old.proc.returncode))
    old.log.close()
    replicas[index] = start_replica(url)


def one_round(cluster, number, rolling):
    url = cluster.create_database(f"rolling_{number}_{'r' if rolling else 'n'}")
    replicas = [start_replica(url)]
    replicas.append(start_replica(url))
    site = fault_server(max(plain_users(USERS)), LATENCY_MS)
    exits = []
    try:
        a = replicas[0]
        a.connect(site)
        text = "\n".join(f"user{i}@example.com" for i in plain_users(USERS))
        preview = a.call("preview_text", file_name="bench.txt", text=text, action="delete", demote="false")
        started = time.monotonic()
        job_id = a.start_job(preview)["id"]
        watcher = Watcher(job_id, replicas)
        watcher.start()
        if rolling:
            while len(watcher.arrivals) < USERS // 4:
                time.sleep(0.01)
            restart(replicas, 0, url, exits)
            restart(replicas, 1, url, exits)
            # Both restarts must land inside the run, or the round measured nothing.
            mid_run = len(watcher.arrivals) < USERS
        else:
            mid_run = True
        watcher.done.wait(timeout=900)
        total = time.monotonic() - started
        gaps = [b - a for a, b in zip(watcher.arrivals, watcher.arrivals[1:])]
        state = site.state()
        counts = state.get("delete_requests_by_account", {})
        exact = (len(state["deleted"]) == USERS and len(counts) == USERS
                 and all(n == 1 for n in counts.values()))
        return {"total": total, "gap": max(gaps) if gaps else float("nan"),
                "median_gap": statistics.median(gaps) if gaps else float("nan"),
                "results": len(watcher.arrivals), "reconnects": watcher.reconnects,
                "exits": exits, "exact": exact, "mid_run": mid_run}
    finally:
        for r in replicas:
            r.stop()
        site.stop()


def main():
    require_binaries()
    print(f"offboard: {OFFBOARD}\nsite root: {SITE_ROOT}\n{USERS} users, {LATENCY_MS} ms a request, "
          f"{ROUNDS} rounds, cores: {os.cpu_count()}\n")
    cluster = PgCluster()
    rows = []
    try:
        for n in range(ROUNDS):
            for rolling in (False, True):
                r = one_round(cluster, n, rolling)
                rows.append((rolling, r))
                print(f"round {n + 1} {'rolling restart' if rolling else 'no restart'}: {r}", flush=True)
    finally:
        cluster.stop()
    print("\n| scenario | total run time (median) | longest gap between results (median, worst) "
          "| results seen | reconnections | SIGTERM to exit (each) | exact |")
    print("|---|---|---|---|---|---|---|")
    for rolling in (False, True):
        rs = [r for k, r in rows if k == rolling]
        exits = [f"{t:.2f} s (code {c})" for r in rs for t, c in r["exits"]]
        print(f"| {'rolling restart of A then B' if rolling else 'no restart'} "
              f"| {statistics.median(r['total'] for r in rs):.2f} s "
              f"| {statistics.median(r['gap'] for r in rs):.2f} s, {max(r['gap'] for r in rs):.2f} s "
              f"| {', '.join(str(r['results']) for r in rs)} "
              f"| {', '.join(str(r['reconnects']) for r in rs)} "
              f"| {', '.join(exits) or '–'} "
              f"| {'yes' if all(r['exact'] for r in rs) else 'NO'}"
              f"{'' if all(r['mid_run'] for r in rs) else ' (a restart came after the run ended)'} |")


if __name__ == "__main__":
    main()
