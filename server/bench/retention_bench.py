"""The retention policy's daily listing of a big site (docs/retention.md, "Cost"): the release
console lists a fault server of BENCH_USERS users (every BENCH_DEACTIVATED_EVERY-th
deactivated) once an owner turns the policy on, and records who is deactivated; this prints
how long the first listing took, how many users it recorded, and the console's peak resident
memory (`VmHWM`) before and after. A second listing (the next day's, made due at once by
saving the policy again) writes nothing new; the peak after it is printed too.

Command: `OFFBOARD_BIN=… FAULT_SERVER_BIN=… SITE_ROOT=… python3 server/bench/retention_bench.py`
(the binaries of `make build`; see console_process.py for the defaults).
"""
import os
import time

import console_process as cp
import fault_site

USERS = int(os.environ.get("BENCH_USERS", "200000"))
DEACTIVATED_EVERY = int(os.environ.get("BENCH_DEACTIVATED_EVERY", "10"))
POLICY = dict(time_zone="Europe/Berlin", enabled="on", min_days="30", weekday="0", at="09:00")


def listed(console, expected, since):
    """Waits until the Team page says the listings saw `expected` deactivated users."""
    while True:
        page = console.call("retention_page")
        if page and page["seen_deactivated"] == expected:
            return time.monotonic() - since
        if time.monotonic() - since > 900:
            raise RuntimeError(f"the listing did not finish: {page}\n{console.log_text()[-2000:]}")
        time.sleep(0.2)


def save_policy(console):
    status, where, _, text = console.post_form("/team/retention", cookie=console.cookie, **POLICY)
    if status != 303:
        raise RuntimeError(f"the policy was not saved: HTTP {status} to {where!r}: {text[:300]}")


def main():
    cp.require_binaries()
    fault = fault_site.FaultServer(cp.FAULT_SERVER, 0, "--users", str(USERS),
                                   "--deactivated-every", str(DEACTIVATED_EVERY))
    console = cp.Console()
    try:
        console.connect(fault)
        expected = USERS // DEACTIVATED_EVERY if DEACTIVATED_EVERY else 0
        before = console.peak_rss_mb()
        start = time.monotonic()
        save_policy(console)
        first = listed(console, expected, start)
        after_first = console.peak_rss_mb()
        # Saving again makes the listing due now: the second listing finds nothing new. It is
        # over once the console's CPU time stops growing.
        save_policy(console)
        time.sleep(6)  # one pass of the worker claims it
        cpu = -1.0
        while console.cpu_seconds() != cpu:
            cpu = console.cpu_seconds()
            time.sleep(2)
        after_second = console.peak_rss_mb()
        print(f"site: {USERS:,} users, {expected:,} deactivated")
        print(f"peak RSS before the listing: {before:.0f} MB")
        print(f"first listing (records {expected:,}): {first:.1f} s, peak RSS {after_first:.0f} MB")
        print(f"after the second listing (nothing changed): peak RSS {after_second:.0f} MB")
        print(f"console CPU: {console.cpu_seconds():.1f} s")
    finally:
        console.stop()
        fault.stop()


if __name__ == "__main__":
    main()
