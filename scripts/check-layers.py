#!/usr/bin/env python3
"""Checks the server's floors: no module imports a floor above its own, and no two files
import each other (directly or round a longer loop). Reads `use crate::…` / `crate::…` /
`super::…` paths as text, so it needs nothing but Python. Run by `make lint`; prints the
offending imports and exits 1 when a rule is broken.

The floors are in FLOORS below (a module may use any floor below its own); ONLY_FROM names
floors that only some modules may reach (storage: only the service). Floors up to
APP_CRATE_FROM's never name the `app` crate (the Leptos UI), tests included: they speak the
shared vocabulary of the `model` crate (app/model/).
"""
import re
import sys
from pathlib import Path

# Top-level module of the server crate -> floor (higher = nearer the admin).
FLOORS = {
    "cli": 8,
    "http": 7,
    "delete_command": 7,
    "rotate_key_command": 7,
    "check_config_command": 7,
    "service": 6,
    "storage": 5,
    "secret": 4,
    "audit_chain": 4,
    "config": 4,
    "engine": 3,
    "scim": 2,
    "sso": 2,
    "data_folder": 1,
    "metrics": 1,
}
# Floors only some may reach: the service is the only caller of storage.
ONLY_FROM = {"storage": {"service"}}
# The lowest floor that may name the `app` crate (`app::…`); the ones below use `model::…`.
APP_CRATE_FROM = 6
APP_RE = re.compile(r"(?<![\w:])app::")
ROOTS = [Path("server/src"), Path("app/src"), Path("app/model/src")]
# The binary crates (main.rs, bin/) sit apart: they only call `cli::run` or are test tools.
SKIP = {Path("server/src/main.rs"), Path("server/src/lib.rs"), Path("app/src/lib.rs")}

PATH_RE = re.compile(r"\b(crate|super)((?:::\w+)+)")


def module_of(root: Path, file: Path) -> list[str]:
    """`server/src/service/jobs.rs` -> ["service", "jobs"]; `…/mod.rs` -> its folder."""
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts


def files_of(root: Path) -> dict[tuple[str, ...], Path]:
    found = {}
    for file in sorted(root.rglob("*.rs")):
        if file in SKIP or "bin" in file.relative_to(root).parts:
            continue
        found[tuple(module_of(root, file))] = file
    return found


def code_without_tests(text: str) -> str:
    """Drops `#[cfg(test)] mod tests { … }` blocks and comments: tests may reach anywhere."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod \w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def imports(root: Path, module: tuple[str, ...], file: Path, known) -> set[tuple[str, ...]]:
    """The files (as module paths) this file names."""
    names = set()
    for kind, rest in PATH_RE.findall(code_without_tests(file.read_text())):
        segments = rest.strip(":").split("::")
        if kind == "crate":
            base = []
        else:
            # `super` from `a/b.rs` (module a::b) is `a`; from `a/mod.rs` (module a) it is the crate.
            base = list(module[:-1])
            while segments and segments[0] == "super":
                base, segments = base[:-1], segments[1:]
        path = base + segments
        # The longest prefix that is a file of ours.
        for n in range(len(path), 0, -1):
            if tuple(path[:n]) in known:
                names.add(tuple(path[:n]))
                break
    names.discard(module)
    return names


def main() -> int:
    problems = []
    for root in ROOTS:
        known = files_of(root)
        graph = {m: imports(root, m, f, known) for m, f in known.items()}
        if root == Path("server/src"):
            for m, file in known.items():
                code = re.sub(r"//[^\n]*", "", file.read_text())
                if FLOORS.get(m[0], 0) < APP_CRATE_FROM and APP_RE.search(code):
                    problems.append(
                        f"{file} names the `app` crate: `{m[0]}` is below the service, use `model::…`"
                    )
            for m, targets in graph.items():
                for t in targets:
                    if m[0] != t[0] and FLOORS.get(t[0], 0) > FLOORS.get(m[0], 0):
                        problems.append(
                            f"{known[m]} uses {'::'.join(t)}: `{t[0]}` is a floor above `{m[0]}`"
                        )
                    allowed = ONLY_FROM.get(t[0])
                    if m[0] != t[0] and allowed is not None and m[0] not in allowed:
                        problems.append(
                            f"{known[m]} uses {'::'.join(t)}: only {', '.join(sorted(allowed))} may use `{t[0]}`"
                        )
        # Loops between files (a parent `mod.rs` declaring its children is not an import).
        edges = {
            m: {t for t in ts if not (len(t) < len(m) and m[: len(t)] == t and known[t].name == "mod.rs")}
            for m, ts in graph.items()
        }
        index, low, stack, on, counter = {}, {}, [], set(), [0]

        def strong(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in edges[v]:
                if w not in index:
                    strong(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                loop = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    loop.append(w)
                    if w == v:
                        break
                if len(loop) > 1:
                    problems.append(
                        "files that import each other: "
                        + ", ".join(str(known[w]) for w in sorted(loop))
                    )

        sys.setrecursionlimit(10000)
        for v in edges:
            if v not in index:
                strong(v)
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} problem(s)")
        return 1
    print("check-layers: floors respected, no import loops")
    return 0


if __name__ == "__main__":
    sys.exit(main())
