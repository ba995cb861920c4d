#!/usr/bin/env python3
"""Counts code lines (not blank, not // comments, not inside #[cfg(test)] mod blocks or *_tests.rs/tests.rs/test_db.rs files) under a folder.

Usage: python3 scripts/codelines.py server/src/storage (the figure docs/architecture.md gives for storage/).
"""
import sys, re
from pathlib import Path
root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
total = 0
per = []
for f in sorted(root.rglob("*.rs")):
    name = f.name
    if name in ("tests.rs", "test_db.rs") or name.endswith("_tests.rs"):
        continue
    n = 0
    lines = f.read_text().splitlines()
    i = 0
    skip_depth = None
    depth = 0
    pending_cfg_test = False
    for line in lines:
        s = line.strip()
        if skip_depth is not None:
            depth += s.count("{") - s.count("}")
            if depth <= skip_depth:
                skip_depth = None
            continue
        if s.startswith("#[cfg(test)]"):
            pending_cfg_test = True
            continue
        if pending_cfg_test and s.startswith("mod ") and s.endswith("{"):
            skip_depth = depth
            depth += 1
            pending_cfg_test = False
            continue
        if pending_cfg_test and s.startswith("mod ") and s.endswith(";"):
            pending_cfg_test = False
            continue
        pending_cfg_test = False
        depth += s.count("{") - s.count("}")
        if not s or s.startswith("//"):
            continue
        n += 1
    total += n
    per.append((n, str(f)))
for n, f in sorted(per, reverse=True)[:15]:
    print(f"{n:6} {f}")
print(f"total {total}")
