#!/usr/bin/env python3
"""What a preview costs: disk per revision and memory per page of rows (issue: unbounded work
per request). Measures one `offboard` binary (OFFBOARD_BIN, default the release build) against
the project's fault server, each on 127.0.0.1 and stopped by PID:

  1. a 100,000-row CSV (~8.6 MB) is uploaded against a 50,000-user site, then revised ten
     times (delete/deactivate, demote on/off): the data folder's size after each step;
  2. ten pages of 500 rows from the middle of that preview: time per page, and the server's
     peak RSS (VmHWM) before and after.

Run: `python3 server/bench/preview_storage.py` (after `make build`), or with
`OFFBOARD_BIN=/path/to/older/offboard` to measure another build the same way.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

import fault_site

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/offboard/target"))
OFFBOARD = os.environ.get("OFFBOARD_BIN", os.path.join(TARGET, "release", "offboard"))
FAULT_SERVER = os.environ.get("FAULT_SERVER_BIN", os.path.join(TARGET, "release", "stack-fault-server"))
TOKEN = fault_site.TOKEN
USERS = 50_000
ROWS = 100_000
REVISIONS = 10
PAGES = 10


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def folder_bytes(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def call(base, name, fields):
    data = urllib.parse.urlencode(fields).encode()
    req = urllib.request.Request(f"{base}/api/{name}", data=data,
                                 headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def upload(base, name, content):
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: text/csv\r\n\r\n".encode() + content + b"\r\n",
        f'--{boundary}\r\nContent-Disposition: form-data; name="action"\r\n\r\ndelete\r\n'.encode(),
        f"--{boundary}--\r\n".encode(),
    ]
    req = urllib.request.Request(f"{base}/choose/upload", data=b"".join(parts),
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        OPENER.open(req, timeout=600)
    except urllib.error.HTTPError as e:
        location = e.headers.get("Location", "")
        if "/preview?id=" in location:
            return location.split("id=", 1)[1]
        raise RuntimeError(f"upload refused: {e.code} {location}")
    raise RuntimeError("upload did not redirect")


def main():
    csv_rows = ["Email,Name,Department,Manager email,Cost centre"]
    for i in range(ROWS):
        # Half the rows match a user of the site, half do not.
        csv_rows.append(f"user{i % (2 * USERS) + 1}@example.com,Person Number {i:06d},"
                        f"Department {i % 97:02d},manager{i % 500}@example.com,CC-{i % 1000:04d}")
    content = ("\r\n".join(csv_rows) + "\r\n").encode()
    work = tempfile.mkdtemp(prefix="offboard-bench-")
    data = os.path.join(work, "data")
    fault = fault_site.FaultServer(FAULT_SERVER, 0, "--users", str(USERS))
    site = fault.url
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The fault server speaks plain http on loopback, which the console refuses by default.
    server = subprocess.Popen([OFFBOARD, "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data,
                               "--site-root", os.path.join(work, "site"),
                               "--allow-http-loopback-sites"],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "server.log"), "w"))
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2)
                break
            except Exception:
                time.sleep(0.1)
        call(base, "save_connection", {"site_url": site, "scim_base_url": "", "token": TOKEN,
                                       "operator_email": ""})
        start = folder_bytes(data)
        t0 = time.time()
        preview_id = upload(base, "leavers.csv", content)
        first = folder_bytes(data)
        print(f"binary: {OFFBOARD}")
        print(f"CSV: {len(content) / 1e6:.1f} MB, {ROWS} rows; site: {USERS} users")
        print(f"| step | data folder (MB) | time (s) |\n|---|---|---|")
        print(f"| empty console | {start / 1e6:.1f} | |")
        print(f"| after the upload | {first / 1e6:.1f} | {time.time() - t0:.2f} |")
        t0 = time.time()
        steps = []
        for i in range(REVISIONS):
            summary = call(base, "revise_preview", {"preview_id": preview_id,
                                                    "action": "deactivate" if i % 2 else "delete",
                                                    "demote": "true" if i % 3 == 0 else "false"})
            preview_id = summary["id"]
            steps.append(folder_bytes(data) / 1e6)
        print("after each revision (MB): " + ", ".join(f"{mb:.0f}" for mb in steps))
        after = folder_bytes(data)
        print(f"| after {REVISIONS} revisions | {after / 1e6:.1f} | {time.time() - t0:.2f} |")
        sizes = {f: os.path.getsize(os.path.join(data, f)) / 1e6 for f in sorted(os.listdir(data))
                 if f.startswith("offboard.db")}
        print("files: " + ", ".join(f"{f} {mb:.1f} MB" for f, mb in sizes.items()))
        print(f"\nper revision, on average: {(after - first) / REVISIONS / 1e6:.1f} MB; "
              f"from the 1st to the {REVISIONS}th revision: "
              f"{(steps[-1] - steps[0]) / (REVISIONS - 1):.1f} MB each")
        before_rss = peak_rss_kib(server.pid)
        times = []
        for p in range(PAGES):
            t = time.time()
            page = call(base, "preview_rows", {"preview_id": preview_id, "outcome": "",
                                               "offset": str(50_000 + p * 500), "limit": "500"})
            times.append(time.time() - t)
            assert len(page["rows"]) == 500, len(page["rows"])
        times.sort()
        print(f"rows page (500 rows at offset 50,000): median {times[len(times) // 2] * 1000:.0f} ms, "
              f"max {times[-1] * 1000:.0f} ms; server peak RSS {before_rss / 1024:.0f} MiB before the "
              f"pages, {peak_rss_kib(server.pid) / 1024:.0f} MiB after")
    finally:
        server.terminate()
        server.wait(timeout=10)
        fault.stop()


if __name__ == "__main__":
    sys.exit(main())
