"""The c360 command line, run as a user runs it.

``c360()`` runs a command through the entry point ``python -m c360`` runs (``c360.cli.main``), in this
process: its exit status, stdout and stderr, in the given folder and with only the given C360_
variables. ``c360_process()`` starts ``python -m c360`` instead, for what only a real process shows
(one line on stderr and no traceback on the way out); starting Python and importing c360 costs about a
second a command, which the many commands run to set up and check state need not pay.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE
from unittest import mock

import pytest
from c360.graph.neo4j_store import Neo4jConfig


def c360(*args: str, cwd: Path, env: dict[str, str] | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """``c360 ARGS`` in ``cwd``, in this process: what ``python -m c360 ARGS`` exits with and prints."""
    from typer.testing import CliRunner

    variables: dict[str, str | None] = {k: None for k in os.environ if k.startswith("C360_")}
    variables.update(env or {})
    with (
        CliRunner().isolation(env=variables) as (stdout, stderr, _),
        contextlib.chdir(cwd),
        mock.patch.object(sys, "argv", ["c360", *args]),
    ):
        # Imported here the first time: its consoles, made on import, see these streams, not a terminal
        # (pytest -s), as those of python -m c360 see the pipes of a test.
        from c360.cli import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:  # sys.exit("message"): Python prints it to stderr and exits 1
                print(exc.code, file=sys.stderr)
                code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        proc = subprocess.CompletedProcess(
            ["c360", *args], code, stdout.getvalue().decode(), stderr.getvalue().decode()
        )
    if ok:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def c360_process(
    *args: str, cwd: Path, env: dict[str, str] | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """``python -m c360 ARGS`` in ``cwd``, a process of its own, with only the C360_ variables of ``env``."""
    proc = subprocess.run(
        [sys.executable, "-m", "c360", *args],
        cwd=cwd,
        env=_process_env(env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if ok:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def _process_env(env: dict[str, str] | None) -> dict[str, str]:
    """This environment without its C360_ variables, and with those of ``env``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("C360_")} | (env or {})


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder with a generated data set ingested into ./.c360; a test that changes it takes a copy."""
    cwd = tmp_path_factory.mktemp("cli")
    c360("generate", "--customers", "200", "--output", "data", "--seed", "11", cwd=cwd)
    c360("ingest", "data", cwd=cwd)
    return cwd


@pytest.fixture(scope="module")
def trained(populated: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A copy of ``populated`` with a model from ``c360 resolve train``, and what that command printed."""
    cwd = copy_of(populated, tmp_path_factory.mktemp("trained"))
    return cwd, c360("resolve", "train", "--max-pairs", "100000", cwd=cwd).stdout


def copy_of(folder: Path, to: Path) -> Path:
    """``folder`` (data and ./.c360, its store closed) copied into ``to``: a test's own working folder."""
    shutil.copytree(folder, to, dirs_exist_ok=True)
    return to


def test_ingest_get_find_export(populated: Path, tmp_path: Path) -> None:
    cwd = copy_of(populated, tmp_path)
    c360("export", "links", "--output", "links.csv", cwd=cwd)
    with (cwd / "links.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    manifest = json.loads((cwd / "data" / "dataset.json").read_text())
    assert len(rows) == manifest["records"]
    assert list(rows[0]) == ["source", "source_key", "customer_id"]
    cid = rows[0]["customer_id"]
    doc = json.loads(c360("customer", "get", cid, cwd=cwd).stdout)
    assert doc["id"] == cid and doc["status"] == "active"
    assert {r["key"] for r in doc["records"]} == {r["source_key"] for r in rows if r["customer_id"] == cid}
    assert doc["golden"]["last_name"]["source"] in doc["sources"]
    email = next(i["value"] for i in doc["identifiers"] if i["kind"] == "email")
    found = json.loads(c360("customer", "find", "--email", email.upper(), cwd=cwd).stdout)
    assert cid in [f["id"] for f in found]
    first = doc["golden"]["first_name"]["value"]
    last = doc["golden"]["last_name"]["value"]
    by_name = json.loads(c360("customer", "find", "--name", f"{first} {last}", cwd=cwd).stdout)
    assert cid in [f["id"] for f in by_name]
    with sqlite3.connect(cwd / ".c360" / "graph.db") as db:
        survivor = db.execute("SELECT survivor FROM merges ORDER BY seq LIMIT 1").fetchone()
    assert survivor, "the generated set has bridging records, so merges happen"
    history = json.loads(c360("customer", "history", survivor[0], cwd=cwd).stdout)
    assert history and history[0]["event"] == "merge" and history[0]["evidence"]["rule"] == "deterministic"
    assert c360("customer", "history", "C404", cwd=cwd, ok=False).returncode == 1
    # Ingesting again changes nothing.
    again = c360("ingest", "data", cwd=cwd).stdout
    assert "0 new, 0 updated" in again
    c360("export", "links", "--output", "links2.csv", cwd=cwd)
    assert (cwd / "links.csv").read_text() == (cwd / "links2.csv").read_text()
    # Split the merged-in records back out: history lists the split, with before and after.
    merged_records = history[0]["records"]
    assert merged_records
    bad = c360("customer", "split", survivor[0], "--records", "nope|1", "--reason", "x", cwd=cwd, ok=False)
    assert bad.returncode == 1 and "not a record of" in bad.stderr
    c360("customer", "split", survivor[0], "--records", ",".join(merged_records), "--reason", "not her", cwd=cwd)
    events = json.loads(c360("customer", "history", survivor[0], cwd=cwd).stdout)
    assert events[-1]["event"] == "split" and events[-1]["records"] == merged_records
    assert events[-1]["before"] == [survivor[0]] and len(events[-1]["after"]) == 2


def test_file_ingest_keeps_bad_rows_as_dead_letters_that_can_be_replayed(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("id,email,date_of_birth\n1,a@x.com,1990-01-01\n,b@x.com,\n3,c@x.com,soon\n")
    proc = c360("ingest", "people.csv", "--source", "shop", cwd=tmp_path)
    assert "2 records" in proc.stdout and "1 rejected" in proc.stdout
    assert "date_of_birth: 1" in proc.stdout and "c360 dlq list --source shop" in proc.stdout
    assert not (tmp_path / ".c360" / "rejects").exists()
    (letter,) = json.loads(c360("dlq", "list", "--source", "shop", "--json", cwd=tmp_path).stdout)
    assert letter["reason"].startswith("people.csv row 3: ") and "missing key" in letter["reason"]
    assert letter["id"] in proc.stdout and json.loads(letter["payload"])["email"] == "b@x.com"
    assert json.loads(c360("dlq", "list", "--source", "crm", "--json", cwd=tmp_path).stdout) == []
    # Ingesting the file again changes nothing and keeps one letter.
    again = c360("ingest", "people.csv", "--source", "shop", cwd=tmp_path)
    assert "0 new, 0 updated, 0 unchanged, 2 seen before" in again.stdout and "1 rejected" in again.stdout
    assert len(json.loads(c360("dlq", "list", "--all", "--json", cwd=tmp_path).stdout)) == 1
    # The steward replays it with the key the row lacked.
    fixed = {
        "event_id": "people.csv-row-3",
        "type": "profile_update",
        "source": "shop",
        "occurred_at": "2026-05-01T00:00:00Z",
        "profile": {"customer_key": "2", "email": "b@x.com"},
    }
    (tmp_path / "fixed.json").write_text(json.dumps(fixed))
    c360("dlq", "replay", letter["id"], "--payload", "fixed.json", cwd=tmp_path)
    assert c360("dlq", "list", "--source", "shop", "--json", cwd=tmp_path).stdout.strip() == "[]"
    found = json.loads(c360("customer", "find", "--email", "b@x.com", cwd=tmp_path).stdout)
    assert len(found) == 1


#: (arguments, C360_ variables, what stderr says): commands that must fail with one line and no traceback
ERRORS: list[tuple[list[str], dict[str, str], str]] = [
    (["ingest", "nope.csv", "--source", "s"], {}, "no such file"),
    (["ingest", "."], {}, "without dataset.json"),
    (["customer", "get", "C404"], {}, "no customer C404"),
    (["customer", "find"], {}, "exactly one of"),
    (["customer", "find", "--phone", "12"], {}, "not a valid phone"),
    (["customer", "get", "x"], {"C360_GRAPH__BACKEND": "oracle"}, "graph.backend"),
    (["customer", "get", "x"], {"C360_CONFIG": "missing.yaml"}, "config file missing.yaml not found"),
    (
        ["customer", "get", "x"],
        {"C360_GRAPH__BACKEND": "neo4j", "C360_GRAPH__NEO4J__URI": "bolt://127.0.0.1:1"},
        "cannot reach neo4j",
    ),
]


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> list[subprocess.CompletedProcess[str]]:
    """Each of ``ERRORS`` run as ``python -m c360``, a process of its own in an empty folder of its own.

    They start all at once: one after the other, each pays its second of start-up while a core idles.
    """
    procs = []
    for n, (args, env, _) in enumerate(ERRORS):
        cwd = tmp_path_factory.mktemp(f"error{n}")
        command = [sys.executable, "-m", "c360", *args]
        procs.append(subprocess.Popen(command, cwd=cwd, env=_process_env(env), stdout=PIPE, stderr=PIPE, text=True))
    done = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return done


@pytest.mark.parametrize(("args", "env", "message"), ERRORS)
def test_errors_are_one_line_and_non_zero(
    failed: list[subprocess.CompletedProcess[str]], args: list[str], env: dict[str, str], message: str
) -> None:
    proc = failed[ERRORS.index((args, env, message))]
    assert proc.args[3:] == args
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1


def test_settings_from_config_file_and_data_dir(tmp_path: Path) -> None:
    (tmp_path / "c360.yaml").write_text("linking:\n  default_region: GB\ningest:\n  batch_size: 2\n")
    (tmp_path / "p.csv").write_text("id,phone\n1,020 7946 0958\n2,+44 20 7946 0958\n")
    c360("--config", "c360.yaml", "--data-dir", "state", "ingest", "p.csv", "--source", "s", cwd=tmp_path)
    assert (tmp_path / "state" / "graph.db").exists()
    found = c360(
        "--data-dir",
        "state",
        "--config",
        "c360.yaml",
        "customer",
        "find",
        "--phone",
        "02079460958",
        cwd=tmp_path,
    ).stdout
    assert len(json.loads(found)) == 1  # both records, read as UK numbers, are one customer


def test_cli_on_neo4j(tmp_path: Path, neo4j_config: Neo4jConfig) -> None:
    env = {
        "C360_GRAPH__BACKEND": "neo4j",
        "C360_GRAPH__NEO4J__URI": neo4j_config.uri,
        "C360_GRAPH__NEO4J__USER": neo4j_config.user,
        "C360_GRAPH__NEO4J__PASSWORD": neo4j_config.password.get_secret_value(),
        "C360_GRAPH__NEO4J__DATABASE": neo4j_config.database,
    }
    from c360.graph.neo4j_store import Neo4jStore

    Neo4jStore(neo4j_config).reset(confirm=True)
    (tmp_path / "p.csv").write_text("id,email,first_name\n1,a@x.com,Ann\n2,A@X.com,Annie\n3,b@x.com,Bo\n")
    out = c360("ingest", "p.csv", "--source", "s", cwd=tmp_path, env=env).stdout
    assert "graph: 3 records, 2 customers" in out
    found = json.loads(c360("customer", "find", "--email", "a@x.com", cwd=tmp_path, env=env).stdout)
    doc = json.loads(c360("customer", "get", found[0]["id"], cwd=tmp_path, env=env).stdout)
    assert sorted(r["key"] for r in doc["records"]) == ["1", "2"]


def test_a_config_typo_or_a_bad_source_fails_before_any_write(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("grpah:\n  backend: neo4j\n")
    proc = c360("--config", "c.yaml", "customer", "get", "x", cwd=tmp_path, ok=False)
    assert proc.returncode == 1 and "grpah" in proc.stderr
    (tmp_path / "p.csv").write_text("id,email\n1,a@x.com\n")
    proc = c360("ingest", "p.csv", "--source", "a|b", cwd=tmp_path, ok=False)
    assert proc.returncode == 1 and "invalid source name" in proc.stderr
    assert not (tmp_path / ".c360" / "graph.db").exists()
    ok = c360("ingest", "p.csv", "--source", "s", cwd=tmp_path, env={"C360_DEBUG": ""})
    assert "1 records" in ok.stdout


def test_resolve_train_and_model_show(trained: tuple[Path, str]) -> None:
    cwd, out = trained  # what c360 resolve train printed
    assert out.startswith("model v") and "trained on" in out
    shown = c360("resolve", "model", "show", cwd=cwd).stdout
    for comparison in ("first_name", "last_name", "dob", "email", "phone", "address", "postcode", "national_id"):
        assert comparison in shown
    assert "exact match" in shown and "prior: P(two random records match)" in shown
    missing = c360("resolve", "model", "show", "--version", "99", cwd=cwd, ok=False)
    assert missing.returncode == 1 and "no model version 99" in missing.stderr


def test_resolve_model_show_without_a_model(tmp_path: Path) -> None:
    proc = c360("resolve", "model", "show", cwd=tmp_path, ok=False)
    assert proc.returncode == 1 and "run: c360 resolve train" in proc.stderr


def test_explain_two_records_and_a_record_against_a_customer(trained: tuple[Path, str], tmp_path: Path) -> None:
    cwd = copy_of(trained[0], tmp_path)  # with the model c360 resolve train made
    c360("export", "links", "--output", "ex.csv", cwd=cwd)
    with (cwd / "ex.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    by_customer: dict[str, list[str]] = {}
    for r in rows:
        by_customer.setdefault(r["customer_id"], []).append(f"{r['source']}|{r['source_key']}")
    cid, (a, b, *_) = next((c, keys) for c, keys in by_customer.items() if len(keys) >= 2)
    other = next(keys[0] for c, keys in by_customer.items() if c != cid)

    model = json.loads(c360("resolve", "model", "show", "--json", cwd=cwd).stdout)
    compared = [c["column"] for c in model["specification"]["comparisons"]]
    same = json.loads(c360("explain", a, b, "--json", cwd=cwd).stdout)
    assert same["same_customer"] is True and same["deterministic"]["identifiers"]
    parts = same["probabilistic"]
    total = parts["prior_weight"] + sum(c["weight"] + c["tf_adjustment"] for c in parts["comparisons"])
    assert abs(total - parts["match_weight"]) < 1e-9
    assert [c["comparison"] for c in parts["comparisons"]] == compared and len(compared) >= 5

    apart = json.loads(c360("explain", a, other, "--json", cwd=cwd).stdout)
    assert apart["same_customer"] is False
    assert [c["comparison"] for c in apart["probabilistic"]["comparisons"]] == compared

    vs_customer = json.loads(c360("explain", a, cid, "--json", cwd=cwd).stdout)
    assert vs_customer["left"]["record"] == a and vs_customer["right"]["customer"] == cid
    text = c360("explain", a, b, cwd=cwd).stdout
    assert "match weight" in text and "deterministic: shared strong identifiers" in text

    missing = c360("explain", a, "nope|1", cwd=cwd, ok=False)
    assert missing.returncode == 1 and "no record nope|1" in missing.stderr


def test_review_queue_from_the_command_line(trained: tuple[Path, str], tmp_path: Path) -> None:
    copy_of(trained[0], tmp_path)  # generated, ingested, and a model trained
    doc = json.loads(c360("customer", "get", _first_customer(tmp_path), cwd=tmp_path).stdout)
    g = doc["golden"]
    twin = f"id,first_name,last_name,date_of_birth\nT1,{g['first_name']['value']},{g['last_name']['value']},"
    twin += f"{g.get('date_of_birth', {}).get('value', '1970-01-01')}\n"
    (tmp_path / "kiosk.csv").write_text(twin)
    unsure = {"C360_REALTIME__UPPER": "0.9999999999", "C360_REALTIME__LOWER": "0.5"}
    c360("ingest", "kiosk.csv", "--source", "kiosk", cwd=tmp_path, env=unsure)
    listed = c360("review", "list", cwd=tmp_path).stdout
    assert "kiosk|T1" in listed, listed
    review_id = listed.split()[0]
    shown = json.loads(c360("review", "show", review_id, cwd=tmp_path).stdout)
    assert shown["item"]["record"] == "kiosk|T1" and shown["evidence"]["probabilistic"]["comparisons"]
    refused = c360("review", "reject", review_id, cwd=tmp_path, ok=False)
    assert refused.returncode != 0 and "--reason" in refused.stderr
    c360("review", "reject", review_id, "--reason", "not the same", "--by", "sam", cwd=tmp_path)
    again = c360("review", "approve", review_id, cwd=tmp_path, ok=False)
    assert again.returncode == 1 and "already rejected" in again.stderr
    c360("review", "export-labels", "--output", "labels.csv", cwd=tmp_path)
    with (tmp_path / "labels.csv").open() as fh:
        (label,) = list(csv.DictReader(fh))
    assert (label["record"], label["label"], label["decided_by"], label["reason"]) == (
        "kiosk|T1",
        "0",
        "sam",
        "not the same",
    )
    assert "no open review items" in c360("review", "list", cwd=tmp_path).stdout


def _first_customer(cwd: Path) -> str:
    c360("export", "links", "--output", "first.csv", cwd=cwd)
    with (cwd / "first.csv").open() as fh:
        return next(csv.DictReader(fh))["customer_id"]
