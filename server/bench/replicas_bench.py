#!/usr/bin/env python3
"""Benchmark: two console replicas on one PostgreSQL (docs/benchmarks.md, "Two replicas on
PostgreSQL").

Starts a throwaway PostgreSQL 15 cluster (pg_cluster.py), then, for each scenario, a fresh
database and two release consoles on it (`offboard serve --database-url postgres://…`, the same
`--secret-key`, each its own data folder, RUST_LOG=warn), and one project fault server
(`stack-fault-server`, 20 ms added on every request) per team: one run at a time per site is
the default, so each team has a site of its own. Prints Markdown tables:
  1. watchers: BENCH_WATCH_TEAMS teams (10) each start a BENCH_WATCH_USERS-user run (2,000) at
     once, alternately on replica A and B, and BENCH_WATCHERS browsers (200) follow the runs'
     live logs (`GET /jobs/{id}/events` with the session cookie), spread over the runs and
     alternately over A and B, so half of them watch a run the other replica drives (its events
     reach them through PostgreSQL NOTIFY). Delivery latency = receipt minus the event's `at`
     stamp, for results stored after the watcher's stream opened, from BENCH_MEASURED_WATCHERS
     (40) watchers that parse every event (the rest drain the bytes); split by whether the
     watcher is on the replica holding the run's lease (table `job_leases`, sampled).
  2. teams: one team alone runs a BENCH_RUN_USERS-user run (2,000), then BENCH_TEAMS teams (50)
     start the same run at once (previews made beforehand, start requests alternately on A
     and B): wall time from the first start request to the last run's final event, users/s,
     CPU seconds per replica, and checks that every run finished with one result per selected
     user and that no account of any site got two DELETEs (`/_control/state`).
Both report peak database connections (every BENCH_SAMPLE_MS (250) ms: `pg_stat_activity` of
the benchmark's database, and each replica's open TCP connections to PostgreSQL from /proc) and
peak RSS per replica (VmRSS sampled, and VmHWM at the end), and where PostgreSQL spent its time
(pg_stat_statements, top statements by execution time, when the extension is installed).
Environment: OFFBOARD_BIN, FAULT_SERVER_BIN, SITE_ROOT (as console_bench.py), OFFBOARD_PG_BIN,
BENCH_SCENARIOS (watchers,teams), BENCH_LATENCY_MS (20), BENCH_JOB_TIMEOUT (seconds, 900),
BENCH_PG_DURABLE=1 (PostgreSQL's durable defaults instead of the test cluster's fsync=off).
No test asserts a time. Every process listens on 127.0.0.1 and is stopped by its PID.
"""
import asyncio
import concurrent.futures
import os
import statistics
import threading
import time

from console_process import (OFFBOARD, Console, cpu_seconds, fault_server, gather_watchers,
                             memory_mb, own_cpu_seconds, percentile, require_binaries,
                             tree_cpu_seconds, watch)
from pg_cluster import PgCluster, Query

LATENCY_MS = int(os.environ.get("BENCH_LATENCY_MS", "20"))
WATCH_TEAMS = int(os.environ.get("BENCH_WATCH_TEAMS", "10"))
WATCH_USERS = int(os.environ.get("BENCH_WATCH_USERS", "2000"))
WATCHERS = int(os.environ.get("BENCH_WATCHERS", "200"))
MEASURED_WATCHERS = int(os.environ.get("BENCH_MEASURED_WATCHERS", "40"))
TEAMS = int(os.environ.get("BENCH_TEAMS", "50"))
RUN_USERS = int(os.environ.get("BENCH_RUN_USERS", "2000"))
JOB_TIMEOUT = float(os.environ.get("BENCH_JOB_TIMEOUT", "900"))
SAMPLE_SECONDS = int(os.environ.get("BENCH_SAMPLE_MS", "250")) / 1000
SCENARIOS = os.environ.get("BENCH_SCENARIOS", "watchers,teams").split(",")
DURABLE = os.environ.get("BENCH_PG_DURABLE") == "1"
# A fixed token key (base64 of 32 bytes): both replicas must decrypt the saved tokens.
SECRET_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def socket_inodes(pid):
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        pass
    return inodes


def tcp_to_port(port):
    """Socket inodes of the established TCP connections to 127.0.0.1:`port`."""
    wanted = f"0100007F:{port:04X}"
    inodes = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[2] == wanted and fields[3] == "01":
                inodes.add(fields[9])
    return inodes


class Replicas:
    """Two consoles on one fresh database of `cluster`, and a sampler of their resources."""

    def __init__(self, cluster, database):
        self.cluster = cluster
        self.database = database
        url = cluster.create_database(database)
        args = ["--database-url", url, "--secret-key", SECRET_KEY]
        # A first: it prints the setup link; B starts on a database that has an owner.
        self.a = Console(args, name="offboard-replica-a-")
        try:
            self.b = Console(args, name="offboard-replica-b-")
        except Exception:
            self.a.stop()
            raise
        self.both = [self.a, self.b]
        self.query = Query(cluster, database)
        self.holders = {}  # job id -> the replicas seen holding its lease, in order
        self.phase = None
        self.peaks = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.errors = []
        self.sampler = threading.Thread(target=self.sample_forever, daemon=True)
        self.sampler.start()

    def name(self, console):
        return "A" if console is self.a else "B"

    def begin(self, phase):
        """Peaks sampled (and statements counted) from now on are `phase`'s."""
        self.cluster.reset_statements(self.database)
        with self.lock:
            self.phase = phase
            self.peaks[phase] = {"db": 0, "db_busy": 0, "busy_sum": 0, "A_conn": 0, "B_conn": 0,
                                 "A_rss": 0.0, "B_rss": 0.0, "samples": 0}

    def sample_forever(self):
        while not self.stopping.wait(SAMPLE_SECONDS):
            try:
                self.sample()
            except (OSError, ValueError) as e:
                # A replica gone, or an answer not understood: said in the output, not hidden.
                self.errors.append(repr(e))

    def sample(self):
        # Busy: running a statement or holding a transaction open (not waiting for work).
        total, busy = (int(x) for x in self.query.one_row(
            "SELECT count(*), count(*) FILTER (WHERE state <> 'idle') FROM pg_stat_activity "
            f"WHERE datname = '{self.database}' AND application_name = 'offboard'"))
        leases = self.query.one_row("SELECT coalesce(string_agg(job_id || '=' || holder, ','), '') "
                                    "FROM job_leases WHERE holder <> ''")[0]
        to_pg = tcp_to_port(self.cluster.port)
        own = {self.name(c): len(socket_inodes(c.pid) & to_pg) for c in self.both}
        rss = {self.name(c): memory_mb(c.pid, "VmRSS") for c in self.both}
        with self.lock:
            for pair in filter(None, leases.split(",")):
                job, holder = pair.split("=", 1)
                pid = int(holder.split("-", 1)[0])
                who = next((self.name(c) for c in self.both if c.pid == pid), holder)
                seen = self.holders.setdefault(job, [])
                if not seen or seen[-1] != who:
                    seen.append(who)
            peaks = self.peaks.get(self.phase)
            if peaks is None:
                return
            peaks["samples"] += 1
            peaks["db"] = max(peaks["db"], total)
            peaks["db_busy"] = max(peaks["db_busy"], busy)
            peaks["busy_sum"] += busy
            for r in ("A", "B"):
                peaks[f"{r}_conn"] = max(peaks[f"{r}_conn"], own[r])
                peaks[f"{r}_rss"] = max(peaks[f"{r}_rss"], rss[r])

    def statements(self):
        return self.cluster.top_statements(self.database)

    def unfinished_jobs(self):
        return int(self.query.one_row(
            "SELECT count(*) FROM jobs WHERE state::text NOT IN ('finished', 'stopped', 'failed')")[0])

    def cpu(self, teams):
        """CPU seconds so far of each replica, PostgreSQL, the teams' sites and this script."""
        seconds = {self.name(c): c.cpu_seconds() for c in self.both}
        seconds["pg"] = tree_cpu_seconds(self.cluster.proc.pid)
        seconds["sites"] = sum(cpu_seconds(t.site.proc.pid) for t in teams)
        seconds["client"] = own_cpu_seconds()
        return seconds

    def driver(self, job_id):
        with self.lock:
            seen = self.holders.get(job_id, [])
        return seen[-1] if seen else None

    def stop(self):
        """Stops both replicas (SIGTERM) and prints what their logs warned about."""
        self.stopping.set()
        self.sampler.join(timeout=10)
        self.query.close()
        for c in self.both:
            c.stop()
            problems = getattr(c, "problems", [])
            print(f"replica {self.name(c)} ({self.database}): {len(problems)} warnings or errors "
                  "in its log" + (":" if problems else ""))
            for line in problems[:10]:
                print(f"    {line}")
        print(flush=True)


class Team:
    """A team of its own (a session showing it), its own site, a preview of every user."""

    def __init__(self, replicas, index, users):
        self.name = f"Team {index}"
        self.site = fault_server(users, LATENCY_MS)
        try:
            # Half the teams are set up through each replica (sessions live in the database).
            self.console = replicas.both[index % 2]
            self.cookie = replicas.a.new_team(self.name)
            self.console.connect(self.site, self.cookie)
            self.preview = self.console.preview_everyone(users, self.cookie)
        except Exception:
            self.site.stop()
            raise
        self.job = None

    def start(self):
        self.job = self.console.start_job(self.preview, self.cookie)
        return self.job["id"]

    def check(self):
        """Whether the run ended `finished` with one result per selected user, each of them
        got exactly one DELETE on the site and no other account got any; (ok, what was found,
        the run's view)."""
        job = self.console.job(self.job["id"], self.cookie)
        selected = self.preview["counts"]["selected"]
        state = self.site.state()
        per_account = state.get("delete_requests_by_account", {})
        twice = sorted(a for a, n in per_account.items() if n > 1)
        deleted = len(state.get("deleted", []))
        # (A site refuses some DELETEs, e.g. of its community's creator: those users get a
        # DELETE and stay; what matters is that none got two.)
        ok = (job["state"] == "finished" and job["done"] == job["total"] == selected
              and not twice and len(per_account) == selected)
        found = (f"{job['state']} {job['done']}/{job['total']} of {selected} selected, "
                 f"{len(per_account)} accounts got a DELETE ({deleted} deleted)"
                 + (f", DELETE twice: {twice[:5]}" if twice else ""))
        return ok, found, job


def set_up_teams(replicas, count, users, first=1):
    """Teams `first`..`first + count - 1`, set up four at a time (previews before any run)."""
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda i: Team(replicas, i, users), range(first, first + count)))


def start_all(teams):
    """Starts every team's run at once (one thread each); the job ids."""
    with concurrent.futures.ThreadPoolExecutor(len(teams)) as pool:
        return list(pool.map(Team.start, teams))


def wait_until_ended(replicas, timeout):
    deadline = time.monotonic() + timeout
    while replicas.unfinished_jobs() and time.monotonic() < deadline:
        time.sleep(0.5)
    return replicas.unfinished_jobs() == 0


def last_event_time(team):
    """The stamp of the run's final event (None if it has none)."""
    return team.console.run_span(team.job["id"], team.cookie)[1]


def stop_sites(teams):
    for t in teams:
        t.site.stop()


def fmt_ms(seconds):
    return f"{seconds * 1000:.0f} ms" if seconds == seconds else "–"


# ---------------------------------------------------------------- 1. watchers


def watchers_scenario(cluster):
    replicas = Replicas(cluster, "bench_watchers")
    teams = []
    try:
        teams = set_up_teams(replicas, WATCH_TEAMS, WATCH_USERS)
        replicas.begin("watchers")
        cpu0, load0 = replicas.cpu(teams), os.getloadavg()[0]
        first = time.time()
        job_ids = start_all(teams)
        result = asyncio.run(follow(replicas, teams, job_ids))
        ended = wait_until_ended(replicas, JOB_TIMEOUT)
        time.sleep(2 * SAMPLE_SECONDS)
        cpu1 = replicas.cpu(teams)
        last = max(filter(None, (last_event_time(t) for t in teams)), default=None)
        checks = [t.check() for t in teams]
        result.update(
            all_ended=ended, total=(last - first) if last else float("nan"),
            cpu={r: cpu1[r] - cpu0[r] for r in cpu0}, load=(load0, os.getloadavg()[0]),
            peaks=dict(replicas.peaks["watchers"]),
            hwm={replicas.name(c): c.peak_rss_mb() for c in replicas.both},
            drivers={j: list(replicas.holders.get(j, [])) for j in job_ids},
            checks=checks, sampler_errors=list(replicas.errors),
            statements=replicas.statements())
        return result
    finally:
        stop_sites(teams)
        replicas.stop()


async def follow(replicas, teams, job_ids):
    """WATCHERS browsers: watcher i follows run i mod teams, on replica A or B by turns."""
    by_watcher = []
    tasks = []
    for i in range(WATCHERS):
        team = teams[i % len(teams)]
        console = replicas.both[(i // len(teams)) % 2]
        latencies, ended = [], []
        by_watcher.append((team, console, latencies, ended))
        tasks.append(asyncio.create_task(watch(console.port, job_ids[i % len(teams)], team.cookie,
                                               i < MEASURED_WATCHERS, latencies, ended)))
    while not all(t.done() for t in tasks):
        await asyncio.sleep(1)
        if await asyncio.to_thread(replicas.unfinished_jobs) == 0:
            break
    await gather_watchers(tasks)
    same, other, unknown = [], [], []
    saw_end = {"same": 0, "other": 0, "unknown": 0}
    count = {"same": 0, "other": 0, "unknown": 0}
    for team, console, latencies, ended in by_watcher:
        driver = replicas.driver(team.job["id"])
        kind = "unknown" if driver is None else ("same" if driver == replicas.name(console) else "other")
        {"same": same, "other": other, "unknown": unknown}[kind].extend(latencies)
        count[kind] += 1
        saw_end[kind] += len(ended)
    return {"same": same, "other": other, "unknown": unknown, "saw_end": saw_end, "count": count}


def print_watchers(r):
    print(f"| {WATCHERS} watchers, {WATCH_TEAMS} runs of {WATCH_USERS:,} users at once, site at "
          f"{LATENCY_MS} ms | watchers | results timed | delivery p50 | delivery p99 | max | saw the end |")
    print("|---|---|---|---|---|---|---|")
    rows = [("on the replica driving the run", r["same"], "same"),
            ("on the other replica (PostgreSQL NOTIFY)", r["other"], "other")]
    if r["count"]["unknown"]:
        rows.append(("driver not seen in `job_leases`", r["unknown"], "unknown"))
    rows.append(("all", r["same"] + r["other"] + r["unknown"], None))
    for label, values, kind in rows:
        n = r["count"][kind] if kind else sum(r["count"].values())
        seen = r["saw_end"][kind] if kind else sum(r["saw_end"].values())
        print(f"| {label} | {n} | {len(values):,} | {fmt_ms(percentile(values, 50))} | "
              f"{fmt_ms(percentile(values, 99))} | {fmt_ms(max(values) if values else float('nan'))} | "
              f"{seen}/{n} |")
    print()
    print_resources(r, "first run start to last run end")
    drivers = r["drivers"]
    moved = {j: d for j, d in drivers.items() if len(d) > 1}
    print(f"\nruns driven: A {sum(1 for d in drivers.values() if d and d[-1] == 'A')}, "
          f"B {sum(1 for d in drivers.values() if d and d[-1] == 'B')}, "
          f"never seen {sum(1 for d in drivers.values() if not d)}"
          + (f"; lease moved between replicas: {moved}" if moved else "; no lease changed hands"))
    print_checks(r["checks"], r["sampler_errors"])
    print(f"all runs ended: {r['all_ended']}\n")
    print_statements(r["statements"], f"{WATCHERS} watchers")


def print_resources(r, span):
    p = r["peaks"]
    print("| replica | console CPU | peak RSS (sampled / VmHWM) | peak DB connections open |")
    print("|---|---|---|---|")
    for name in ("A", "B"):
        print(f"| {name} | {r['cpu'][name]:.1f} s | {p[name + '_rss']:.0f} MB / {r['hwm'][name]:.0f} MB | "
              f"{p[name + '_conn']} |")
    print(f"| both | {r['cpu']['A'] + r['cpu']['B']:.1f} s | | {db_connections(p)} |")
    print(f"\ntotal time ({span}): {r['total']:.1f} s; {elsewhere(r)}")


def db_connections(p):
    busy = p["busy_sum"] / p["samples"] if p["samples"] else float("nan")
    return (f"{p['db']} in `pg_stat_activity`, busy at most {p['db_busy']} at once "
            f"(mean {busy:.1f}; {p['samples']} samples)")


def elsewhere(r):
    """The CPU the rest of the machine's work took meanwhile, and its load."""
    c = r["cpu"]
    return (f"CPU of PostgreSQL {c['pg']:.1f} s, of the sites {c['sites']:.1f} s, of this script "
            f"{c['client']:.1f} s; load average (1 min) {r['load'][0]:.1f} at the start, "
            f"{r['load'][1]:.1f} at the end")


def print_statements(statements, label):
    """Where PostgreSQL's time went during a phase (pg_stat_statements)."""
    if not statements:
        return
    (total_ms, total_calls), top = statements
    print(f"| {label}: PostgreSQL statements by time ({float(total_ms) / 1000:.1f} s in "
          f"{int(total_calls):,} statements in all) | time | calls |")
    print("|---|---|---|")
    for ms, calls, text in top:
        print(f"| `{text.replace('|', '¦')}` | {float(ms) / 1000:.1f} s | {int(calls):,} |")
    print(flush=True)


def print_checks(checks, sampler_errors):
    if sampler_errors:
        print(f"SAMPLER ERRORS ({len(sampler_errors)}): {sampler_errors[:3]}")
    bad = [found for ok, found, _ in checks if not ok]
    print(f"runs checked: {len(checks) - len(bad)}/{len(checks)} finished with one result per "
          f"selected user, and each selected user got one DELETE, none two")
    for found in bad:
        print(f"  NOT AS EXPECTED: {found}")


# ---------------------------------------------------------------- 2. teams


def teams_scenario(cluster):
    replicas = Replicas(cluster, "bench_teams")
    teams = []
    try:
        teams = set_up_teams(replicas, TEAMS + 1, RUN_USERS)
        alone, together = teams[0], teams[1:]
        rows = []
        for label, group in [("1 team alone", [alone]), (f"{TEAMS} teams at once", together)]:
            replicas.begin(label)
            cpu0, load0 = replicas.cpu(group), os.getloadavg()[0]
            first = time.time()
            start_all(group)
            ended = wait_until_ended(replicas, JOB_TIMEOUT)
            time.sleep(2 * SAMPLE_SECONDS)
            cpu1 = replicas.cpu(group)
            spans = [t.console.run_span(t.job["id"], t.cookie) for t in group]
            last = max((e for _, e in spans if e), default=None)
            runs = [e - s for s, e in spans if s and e]
            checks = [t.check() for t in group]
            rows.append({
                "label": label, "all_ended": ended,
                "total": (last - first) if last else float("nan"),
                "users": sum(c[2]["done"] for c in checks),
                "runs": runs, "cpu": {r: cpu1[r] - cpu0[r] for r in cpu0},
                "load": (load0, os.getloadavg()[0]),
                "peaks": dict(replicas.peaks[label]),
                "hwm": {replicas.name(c): c.peak_rss_mb() for c in replicas.both},
                "checks": checks,
                "drivers": [replicas.driver(t.job["id"]) for t in group],
                "sampler_errors": list(replicas.errors),
                "statements": replicas.statements()})
        return rows
    finally:
        stop_sites(teams)
        replicas.stop()


def print_teams(rows):
    print(f"| {RUN_USERS:,}-user runs, site at {LATENCY_MS} ms, two replicas | wall time (first start → "
          "last end) | users | users/s | one run: median (min–max) | console CPU A / B | "
          "peak RSS A / B (sampled) | peak DB connections A / B / all | result |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p, runs = r["peaks"], r["runs"]
        good = sum(1 for ok, _, _ in r["checks"] if ok)
        driven = f"driven A {r['drivers'].count('A')} / B {r['drivers'].count('B')}"
        span = (f"{statistics.median(runs):.1f} s ({min(runs):.1f}–{max(runs):.1f})" if runs else "–")
        print(f"| {r['label']} | {r['total']:.1f} s | {r['users']:,} | {r['users'] / r['total']:.0f} | "
              f"{span} | {r['cpu']['A']:.1f} s / {r['cpu']['B']:.1f} s | "
              f"{p['A_rss']:.0f} / {p['B_rss']:.0f} MB | {p['A_conn']} / {p['B_conn']} / {p['db']} | "
              f"{good}/{len(r['checks'])} runs finished and checked, {driven} |")
    if len(rows) == 2 and rows[0]["total"] > 0:
        print(f"\n{TEAMS} teams at once took {rows[1]['total'] / rows[0]['total']:.1f}× the time of one "
              f"team alone, for {TEAMS}× the users.")
    print()
    print_statements(rows[-1]["statements"], rows[-1]["label"])
    for r in rows:
        print(f"\n{r['label']}: all runs ended: {r['all_ended']}; VmHWM A {r['hwm']['A']:.0f} MB, "
              f"B {r['hwm']['B']:.0f} MB; DB connections: {db_connections(r['peaks'])}; {elsewhere(r)}")
        print_checks(r["checks"], r["sampler_errors"])
    print(flush=True)


def main():
    require_binaries()
    print(f"console: {OFFBOARD}\nload average at start: {os.getloadavg()}")
    started = time.monotonic()
    cluster = PgCluster(durable=DURABLE)
    print(f"PostgreSQL: {cluster.bin}, {'durable defaults' if DURABLE else 'fsync=off (test cluster)'}\n",
          flush=True)
    try:
        if "watchers" in SCENARIOS:
            print_watchers(watchers_scenario(cluster))
        if "teams" in SCENARIOS:
            print_teams(teams_scenario(cluster))
    finally:
        cluster.stop()
    print(f"load average at end: {os.getloadavg()}; benchmark took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
