"""A throwaway PostgreSQL cluster for the benchmarks (the Python twin of
server/tests/support/pg_cluster.rs): Debian's PostgreSQL 15, initialised in a temporary folder,
listening on a free loopback port, stopped by its PID at the end. PostgreSQL refuses to run as
root: as root, initdb and the server run as the `postgres` user the Debian package creates.
A watchdog shell loop stops the server if the benchmark dies without stopping it."""
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from console_process import end_process, free_port

BIN_DIRS = [d for d in [os.environ.get("OFFBOARD_PG_BIN"), "/usr/lib/postgresql/15/bin",
                        "/usr/lib/postgresql/16/bin"] if d]
USER = "offboard"  # the superuser the cluster is created with (trust, loopback only)


def bin_dir():
    for d in BIN_DIRS:
        if os.path.isfile(os.path.join(d, "initdb")) and os.path.isfile(os.path.join(d, "postgres")):
            return d
    raise SystemExit(f"initdb was not found in {', '.join(BIN_DIRS)}: install PostgreSQL 15 "
                     "(`make deps`, Debian package postgresql-15) or set OFFBOARD_PG_BIN")


class PgCluster:
    """`durable`: PostgreSQL's own defaults (fsync, synchronous commit, full page writes);
    otherwise the test cluster's settings (fsync=off, synchronous_commit=off,
    full_page_writes=off), which make every commit cheaper than on a real server."""

    def __init__(self, durable=False):
        self.bin = bin_dir()
        self.dir = tempfile.mkdtemp(prefix="offboard-pg-bench-")
        run_as = {}
        if os.getuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        env = dict(os.environ, LC_ALL="C.UTF-8")
        env.pop("PGDATA", None)
        data = os.path.join(self.dir, "data")
        init = subprocess.run([os.path.join(self.bin, "initdb"), "--pgdata", data, "--username", USER,
                               "--auth", "trust", "--encoding", "UTF8", "--no-sync",
                               "--no-instructions"],
                              cwd=self.dir, env=env, capture_output=True, text=True, **run_as)
        if init.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError(f"initdb failed: {init.stderr.strip()}")
        self.port = free_port()
        settings = ["listen_addresses=127.0.0.1", f"unix_socket_directories={self.dir}",
                    "max_connections=300"]
        if not durable:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        # Where the database's time goes, per statement (contrib, shipped with the server).
        self.statements = os.path.isfile(os.path.join(self.bin, "..", "lib", "pg_stat_statements.so"))
        if self.statements:
            settings.append("shared_preload_libraries=pg_stat_statements")
        self.log = open(os.path.join(self.dir, "postgres.log"), "w")
        args = [os.path.join(self.bin, "postgres"), "-D", data, "-p", str(self.port)]
        for setting in settings:
            args += ["-c", setting]
        self.proc = subprocess.Popen(args, cwd=self.dir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, **run_as)
        self.watchdog = subprocess.Popen(
            ["sh", "-c", 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; '
                         'kill -INT "$2" 2>/dev/null; sleep 10; kill -KILL "$2" 2>/dev/null; rm -rf "$3"',
             "offboard-pg-watchdog", str(os.getpid()), str(self.proc.pid), self.dir],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        pid_file = os.path.join(data, "postmaster.pid")
        while True:
            try:
                with open(pid_file) as f:
                    if any(line.strip() == "ready" for line in f):
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(self.dir, "postgres.log")) as f:
                    log = f.read()
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start:\n{log}")
            time.sleep(0.05)

    def url(self, name):
        return f"postgres://{USER}@127.0.0.1:{self.port}/{name}"

    def psql(self, database="postgres"):
        """The argument list of `psql` on `database` (unaligned, tuples only)."""
        return ["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", database]

    def rows(self, sql, database="postgres", fields=1):
        """The rows `sql` returns, each a list of its `fields` fields (the last may hold a `|`)."""
        out = subprocess.run(self.psql(database) + ["-c", sql], check=True, capture_output=True,
                             text=True).stdout
        return [line.split("|", fields - 1) for line in out.splitlines() if line]

    def create_database(self, name):
        self.rows(f"CREATE DATABASE {name}")
        if self.statements:
            self.rows("CREATE EXTENSION pg_stat_statements", name)
        return self.url(name)

    def top_statements(self, database, count=6):
        """(milliseconds, calls, statement) of the statements that took the most time in
        `database` since the last reset, and the total of all (None without the extension)."""
        if not self.statements:
            return None
        mine = f"dbid = (SELECT oid FROM pg_database WHERE datname = '{database}')"
        total = self.rows(f"SELECT round(sum(total_exec_time)), sum(calls) FROM pg_stat_statements "
                          f"WHERE {mine}", database, 2)[0]
        top = self.rows(f"SELECT round(total_exec_time), calls, "
                        f"left(regexp_replace(query, '\\s+', ' ', 'g'), 110) FROM pg_stat_statements "
                        f"WHERE {mine} ORDER BY total_exec_time DESC LIMIT {count}", database, 3)
        return total, top

    def reset_statements(self, database):
        if self.statements:
            self.rows("SELECT pg_stat_statements_reset()", database)

    def stop(self):
        """Fast shutdown (SIGINT) by PID, SIGKILL after 20 s; removes the folder."""
        self.watchdog.kill()
        self.watchdog.wait()
        end_process(self.proc, signal.SIGINT, 20)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Query:
    """One kept-open `psql` session for repeated one-row queries (the samplers' probe)."""

    def __init__(self, cluster, database):
        self.proc = subprocess.Popen(cluster.psql(database), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, bufsize=1)
        # One question at a time: the sampler thread and the benchmark share the session.
        self.lock = threading.Lock()

    def one_row(self, sql):
        """The fields of the single row `sql` returns (it must return exactly one)."""
        with self.lock:
            self.proc.stdin.write(sql.strip().rstrip(";") + ";\n")
            self.proc.stdin.flush()
            return self.proc.stdout.readline().rstrip("\n").split("|")

    def close(self):
        self.proc.stdin.close()
        end_process(self.proc, signal.SIGTERM, 10)
