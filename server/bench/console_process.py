"""The release console (`offboard serve`) as a child process for the benchmarks, driven the way
its pages drive it: sign-in, teams, connect a site, preview, start a run, follow its live log.

Shared by console_bench.py (one console on SQLite) and replicas_bench.py (two replicas on one
PostgreSQL). Every process listens on 127.0.0.1 and is stopped by its PID.

Since the console has accounts (issue 9), every server function needs a signed-in team member:
`Console.start` creates the first owner from the one-time setup link the console prints in its
log on first start (as server/tests/support/console_process.rs does), or signs in when the
database has accounts already (a second replica). The session is the `offboard_session`
cookie; requests without an `Origin` header are not browser requests and pass the same-origin
guard, so none is sent.
"""
import asyncio
import datetime
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
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
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The account every benchmark console is set up with (email, name, password).
OWNER = ("olive@offboard.test", "Olive Owner", "correct horse battery staple")
# Job states after which nothing more happens.
ENDED = ("finished", "stopped", "failed")


def require_binaries():
    for path in (OFFBOARD, FAULT_SERVER):
        if not os.path.exists(path):
            raise SystemExit(f"{path} is missing: run `make build` first")


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name (field 3, the state, is [0])."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid, children=False):
    """User + system CPU time a process has used so far; `children`: plus that of its
    children it has reaped."""
    fields = proc_stat(pid)
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def tree_cpu_seconds(pid):
    """CPU time of a process and its children, living and reaped (PostgreSQL: the postmaster
    and its backends)."""
    total = cpu_seconds(pid, children=True)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(proc_stat(entry)[1]) == pid:
                    total += cpu_seconds(entry)
            except (OSError, IndexError, ValueError):
                pass  # gone meanwhile
    return total


def own_cpu_seconds():
    t = os.times()
    return t.user + t.system


def memory_mb(pid, field):
    """`VmRSS` (now) or `VmHWM` (peak so far) of a process, in MB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def end_process(proc, first=signal.SIGTERM, timeout=15):
    """Sends `first` to a child we started (by its PID), SIGKILL after `timeout` s; reaps it."""
    if proc.poll() is None:
        proc.send_signal(first)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def stamp(text):
    """An event's `at` (RFC 3339) as Unix seconds."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def fault_server(users, latency_ms):
    """The simulated site with `users` users (see fault_site.py)."""
    return fault_site.FaultServer(FAULT_SERVER, latency_ms, "--users", str(users))


def everyone(users):
    """A pasted list naming every user of a fault server with `users` users."""
    return "\n".join(f"user{i}@example.com" for i in range(1, users + 1))


class Console:
    """`offboard serve` on a free port with its own data folder, signed in as the first owner
    (`cookie`). `args`: more flags for `offboard serve`."""

    def __init__(self, args=(), name="offboard-bench-"):
        self.data = tempfile.mkdtemp(prefix=name)
        self.port = free_port()
        self.log_path = os.path.join(self.data, "server.log")
        self.log = open(self.log_path, "w")
        env = dict(os.environ, OFFBOARD_ADDR=f"127.0.0.1:{self.port}", OFFBOARD_DATA_DIR=self.data,
                   LEPTOS_SITE_ROOT=SITE_ROOT, RUST_LOG="warn",
                   # The fault server speaks plain http on loopback (refused by default).
                   OFFBOARD_ALLOW_HTTP_LOOPBACK_SITES="true",
                   # The benchmarks' watchers stand for many browsers but share one team's
                   # cookie: the caps per person and per team would refuse all but a few.
                   OFFBOARD_MAX_WATCHERS_PER_PERSON_PER_RUN="500",
                   OFFBOARD_MAX_WATCHERS_PER_PERSON="500", OFFBOARD_MAX_WATCHERS_PER_TEAM="500")
        env.pop("DATABASE_URL", None)
        env.pop("OFFBOARD_SECRET_KEY", None)
        self.proc = subprocess.Popen([OFFBOARD, "serve", *args], env=env,
                                     stdout=self.log, stderr=self.log)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.request("GET", "/readyz", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop(keep_data=True)
                raise RuntimeError(f"the console did not start; log {self.log_path}:\n{self.log_text()}")
            time.sleep(0.1)
        self.cookie = self.set_up_owner()

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

    def request(self, method, path, body=None, headers=None, cookie=None, timeout=600):
        """One request on a new connection: (status, headers, body text)."""
        headers = dict(headers or {})
        if cookie:
            headers["Cookie"] = cookie
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            return r.status, r.headers, r.read().decode()
        finally:
            c.close()

    def post_form(self, path, cookie=None, **fields):
        """A plain form post (sign-in, teams): (status, Location, session cookie set, body)."""
        status, headers, text = self.request(
            "POST", path, body=urllib.parse.urlencode(fields), cookie=cookie,
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        session = None
        for value in headers.get_all("Set-Cookie") or []:
            if value.startswith("offboard_session="):
                session = value.split(";", 1)[0]
        return status, headers.get("Location", ""), session, text

    def set_up_owner(self):
        """Creates the first owner from the setup link in the log, or signs in when the
        database has accounts already (no link printed); the session cookie."""
        email, name, password = OWNER
        log = self.log_text()
        at = log.rfind("/setup?code=")
        if at >= 0:
            code = log[at + len("/setup?code="):].split()[0]
            _, where, session, text = self.post_form("/setup", code=code, email=email, name=name,
                                                     password=password, again=password)
            # A link printed by a replica that started beside one already set up is
            # refused: sign in instead.
            if session:
                return session
        return self.sign_in()

    def sign_in(self):
        """A new session of the first owner (each session shows one team at a time)."""
        email, _, password = OWNER
        _, where, session, text = self.post_form("/sign-in", email=email, password=password, next="/")
        if not session:
            raise RuntimeError(f"sign-in refused (to {where!r}): {text[:300]}\n{self.log_text()}")
        return session

    def call(self, name, cookie=None, **fields):
        """A server function, as the pages call it (form-encoded POST, JSON answer)."""
        body = urllib.parse.urlencode({k: v for k, v in fields.items() if v is not None})
        status, _, text = self.request(
            "POST", f"/api/{name}", body=body, cookie=cookie or self.cookie,
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Accept": "application/json"})
        if status != 200:
            raise RuntimeError(f"{name}: HTTP {status}: {text[:500]}")
        return json.loads(text)

    def new_team(self, name):
        """Creates a team (the first owner is its owner) and returns a new session showing it."""
        status, where, _, text = self.post_form("/teams", cookie=self.cookie, name=name)
        if "problem=done" not in where:
            raise RuntimeError(f"creating team {name!r}: HTTP {status} to {where!r}: {text[:300]}")
        teams = self.call("console_teams")[0]
        team = next(t["id"] for t in teams if t["name"] == name)
        session = self.sign_in()
        _, where, _, text = self.post_form("/account/team", cookie=session, team=str(team))
        if where != "/":
            raise RuntimeError(f"switching to team {name!r}: to {where!r}: {text[:300]}")
        return session

    def connect(self, fault, cookie=None):
        """Saves the fault server as the team's site (the Connect form); its verdict."""
        _, diagnosis = self.call("save_connection", cookie=cookie, site_url=fault.url,
                                 scim_base_url=f"{fault.url}/v2", token=TOKEN, operator_email="")
        if not diagnosis.get("ok"):
            raise RuntimeError(f"the site was refused: {diagnosis}")
        return diagnosis

    def preview_everyone(self, users, cookie=None):
        return self.call("preview_text", cookie=cookie, file_name="bench.txt", text=everyone(users),
                         action="delete", demote="false")

    def start_job(self, preview, cookie=None):
        """Types the preview's phrase: the new run (`id`, `state`, …)."""
        return self.call("start_job", cookie=cookie, preview_id=preview["id"], typed=preview["phrase"])

    def job(self, job_id, cookie=None):
        return self.call("job", cookie=cookie, job_id=job_id)

    def events(self, job_id, cookie=None):
        """A finished job's whole log (`GET /jobs/{id}/events` ends with the job)."""
        _, _, text = self.request("GET", f"/jobs/{job_id}/events", cookie=cookie or self.cookie,
                                  timeout=120)
        return [json.loads(line[6:]) for line in text.splitlines()
                if line.startswith("data: ") and '"seq"' in line]

    def run_span(self, job_id, cookie=None):
        """(stamp of the `running` event, stamp of the final one) from the job's log (the
        log's stamps have milliseconds; JobView's started_at/finished_at only seconds)."""
        started = ended = None
        for event in self.events(job_id, cookie):
            if event.get("state") == "running" and started is None:
                started = stamp(event["at"])
            elif event.get("state") in ENDED:
                ended = stamp(event["at"])
        return started, ended

    def log_problems(self):
        """The log's warnings and errors, but the setup link (printed as a warning)."""
        return [line for line in self.log_text().splitlines()
                if (" WARN " in line or " ERROR " in line) and "/setup?code=" not in line]

    def cpu_seconds(self):
        return cpu_seconds(self.pid)

    def peak_rss_mb(self):
        return memory_mb(self.pid, "VmHWM")

    def stop(self, keep_data=False):
        """SIGTERM (a replica hands its runs back), SIGKILL after 15 s."""
        end_process(self.proc)
        self.problems = self.log_problems()
        self.log.close()
        if not keep_data:
            shutil.rmtree(self.data, ignore_errors=True)


async def watch(port, job_id, cookie, measure, latencies, ended):
    """One browser on a job's live log (`GET /jobs/{id}/events`, raw HTTP). `measure`: parse
    every event and add the delivery latency of each result (receipt minus the event's `at`)
    stored after the stream opened (older ones are history being replayed); else just drain
    the bytes. Appends the time the end arrived to `ended`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                 f"Cookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    opened = time.time()
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
                    at = stamp(event["at"])
                    if event.get("result") is not None and at >= opened:
                        latencies.append(now - at)
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


async def wait_for_end(console, job_id, cookie, timeout):
    """Polls the job every second until it ended (or `timeout` s): its last view."""
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        job = await asyncio.to_thread(console.job, job_id, cookie)
        if job["state"] in ENDED:
            break
    return job


async def gather_watchers(tasks, grace=30):
    """Waits up to `grace` s for the watchers after their jobs ended; cancels the rest."""
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for t in pending:
            t.cancel()
