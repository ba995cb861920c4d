"""The project's Stack-shaped fault server (`stack-fault-server`, release build) as a child
process for the benchmarks: started on a free loopback port, stopped by PID."""
import json
import subprocess
import urllib.request

TOKEN = "bench-token-0123456789"


class FaultServer:
    """`binary --port 0 --token TOKEN --latency-ms N *flags`; `url` is where it listens."""

    def __init__(self, binary, latency_ms, *flags):
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--token", TOKEN, "--latency-ms", str(latency_ms), *flags],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"fault server did not start: {line!r}")
        self.url = line.removeprefix("listening on ")

    def state(self):
        """The server's own record of what it received and what it holds."""
        with urllib.request.urlopen(f"{self.url}/_control/state", timeout=30) as r:
            return json.load(r)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
