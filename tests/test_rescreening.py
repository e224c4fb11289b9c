"""Re-screening on the real OFAC list when it changes: manifests and diffs, only new and changed entries
screened, remembered false positives until their entry changes, the manifest file."""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from c360.connectors.watchlist_manifest import read_manifest, write_manifest
from c360.connectors.watchlists import load_ofac
from c360.graph.errors import InvalidInputError
from c360.graph.kyc import ScreeningDecision
from c360.graph.watchlist import Watchlist
from c360.resolution.rescreening import (
    ListDiff,
    Subject,
    apply_decisions,
    diff_lists,
    findings,
    hit_state,
    list_manifest,
    needs_full_screening,
    rescreen,
)
from c360.resolution.screening import Screener

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "watchlists"
ADDED, CHANGED, REMOVED, UNCHANGED = "ofac_sdn:99999001", "ofac_sdn:7846", "ofac_sdn:1572", "ofac_sdn:27225"
AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Lists:
    old: Watchlist
    new: Watchlist
    screener: Screener  # over the new list


def _modified_copy(folder: Path) -> Path:
    """A copy of the published OFAC files with one alias changed, one entry added and one removed."""
    shutil.copytree(DATA / "ofac", folder)
    for f in folder.iterdir():
        f.chmod(0o644)
    alt = (folder / "alt.csv").read_text(encoding="utf-8")
    assert alt.count('"MAHMOUD, Col. Abdel Hamid"') == 1
    (folder / "alt.csv").write_text(alt.replace('"MAHMOUD, Col. Abdel Hamid"', '"MAHMOUD, Abdel Hamid"'), "utf-8")
    lines = (folder / "sdn.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("1572,")]  # NORIEGA has no aliases in alt.csv
    assert len(kept) == len(lines) - 1 and kept[-1] == "\x1a"
    added = (
        '99999001,"QURESHI, Mohammad Rafiq Abdul","individual","SDGT",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,'
        '"DOB 12 Mar 1968; nationality Pakistan."\r\n'
    )
    (folder / "sdn.csv").write_text("".join([*kept[:-1], added, kept[-1]]), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def lists(tmp_path_factory: pytest.TempPathFactory) -> Lists:
    new = load_ofac(_modified_copy(tmp_path_factory.mktemp("lists") / "ofac"))
    return Lists(load_ofac(DATA / "ofac"), new, Screener([new]))


def decision(key: str, content_hash: str, outcome: str = "false_positive", at: datetime = AT) -> ScreeningDecision:
    return ScreeningDecision("cus_1", "ofac_sdn", key, content_hash, outcome, "officer_1", at, "checked")


def test_the_diff_of_a_modified_copy_through_a_manifest_file(lists: Lists, tmp_path: Path) -> None:
    path = tmp_path / "manifests" / "ofac_sdn.json"
    assert read_manifest(path) is None  # first run: nothing screened yet
    write_manifest(path, list_manifest(lists.old))
    old = read_manifest(path)
    assert old is not None and len(old) == 8976 and old[CHANGED] == lists.old.by_id("7846").content_hash()
    diff = diff_lists(old, lists.new)
    assert diff == ListDiff(added=(ADDED,), changed=(CHANGED,), removed=(REMOVED,))
    assert diff.to_screen == (ADDED, CHANGED)
    assert diff_lists(list_manifest(lists.new), lists.new) == ListDiff((), (), ())
    assert diff_lists({}, lists.new).added == tuple(list_manifest(lists.new))  # no manifest: all is new


def test_rescreening_alerts_on_added_and_changed_entries_only(lists: Lists) -> None:
    diff = diff_lists(list_manifest(lists.old), lists.new)
    subjects = [
        Subject("c_added", ("Rafiq Qureshi",), date(1968, 3, 12), "Pakistan"),
        Subject("c_changed", ("Abid Hamid Mahmud al-Tikriti",)),
        Subject("c_unchanged", ("Min Aung Hlaing",)),  # listed, but that entry did not change
        Subject("c_removed", ("Manuel Antonio Noriega",)),
        Subject("c_nobody", ("Ravi Kumar Sharma",)),
    ]
    got = {r.subject_id: r for r in rescreen(lists.screener, subjects, lists.new, diff, {})}
    assert set(got) == {"c_added", "c_changed"}
    assert [h.entry_key for h in got["c_added"].new_hits] == [ADDED]
    assert [h.entry_key for h in got["c_changed"].new_hits] == [CHANGED]
    # The index of the changed entries weighs tokens as the whole list does: the same score as full screening.
    full = lists.screener.screen("Rafiq Qureshi", date_of_birth=date(1968, 3, 12), nationality="Pakistan")
    assert got["c_added"].new_hits[0].score == next(h.score for h in full if h.entry_key == ADDED)
    # ... which an index of the added entry alone would not give: every token there looks equally rare.
    alone = Screener([Watchlist("ofac_sdn", None, (lists.new.by_id("99999001"),))])
    assert [h.score for h in alone.screen("Rafiq Qureshi")] != [h.score for h in full if h.entry_key == ADDED]


def test_a_false_positive_stays_suppressed_until_its_entry_changes(lists: Lists) -> None:
    name = "Abid Hamid Mahmud al-Tikriti"
    before = [h for h in Screener([lists.old]).screen(name) if h.entry_key == CHANGED]
    old_hash = lists.old.by_id("7846").content_hash()
    fp = [decision(CHANGED, old_hash)]
    assert [s for _, s in apply_decisions(before, fp)] == [True]  # same content: stays quiet
    after = [h for h in lists.screener.screen(name) if h.entry_key == CHANGED]
    assert [s for _, s in apply_decisions(after, fp)] == [False]  # the entry changed: it alerts again
    diff = diff_lists(list_manifest(lists.old), lists.new)
    subject = Subject("cus_1", (name,))
    alerted = rescreen(lists.screener, [subject], lists.new, diff, {"cus_1": fp})
    assert [(r.subject_id, [h.entry_key for h in r.new_hits]) for r in alerted] == [("cus_1", [CHANGED])]
    new_fp = [*fp, decision(CHANGED, lists.new.by_id("7846").content_hash(), at=AT + timedelta(days=1))]
    assert rescreen(lists.screener, [subject], lists.new, diff, {"cus_1": new_fp}) == []
    assert rescreen(lists.screener, [subject], lists.new, diff, {"someone_else": new_fp}) != []


def test_the_latest_decision_counts_and_confirmed_matches_never_suppress(lists: Lists) -> None:
    hits = [h for h in Screener([lists.old]).screen("Abid Hamid Mahmud al-Tikriti") if h.entry_key == CHANGED]
    h = lists.old.by_id("7846").content_hash()
    confirmed_later = [decision(CHANGED, h), decision(CHANGED, h, "confirmed_match", AT + timedelta(hours=1))]
    assert [s for _, s in apply_decisions(hits, confirmed_later)] == [False]
    assert [(f.confirmed, f.suppressed) for f in findings(hits, confirmed_later)] == [(True, False)]
    cleared_later = list(
        reversed([decision(CHANGED, h, "confirmed_match"), decision(CHANGED, h, at=AT + timedelta(1))])
    )
    assert [(f.confirmed, f.suppressed) for f in findings(hits, cleared_later)] == [(False, True)]
    assert hit_state(CHANGED, h, cleared_later) == (True, False)
    assert hit_state(CHANGED, "0" * 64, cleared_later) == (False, False)  # another content: it alerts
    assert hit_state(CHANGED, "0" * 64, confirmed_later) == (False, True)  # confirmed stays confirmed
    f = findings(hits, [])[0]
    assert (f.list_name, f.entry_key, f.programs, f.score) == ("ofac_sdn", CHANGED, ("IRAQ2",), hits[0].score)
    with pytest.raises(InvalidInputError, match="names the list"):
        apply_decisions(hits, [ScreeningDecision("c", "un_consolidated", CHANGED, h, "false_positive", "o", AT, "r")])


def test_a_changed_name_is_screened_against_the_whole_list(lists: Lists) -> None:
    diff = diff_lists(list_manifest(lists.old), lists.new)
    renamed = Subject("c_renamed", ("Min Aung Hlaing",), previous_names=("Aung Min",))
    reordered = Subject("c_same", ("Min Aung Hlaing",), previous_names=("HLAING, Min Aung",))
    got = rescreen(lists.screener, [renamed, reordered], lists.new, diff, {})
    assert [(r.subject_id, r.new_hits[0].entry_key) for r in got] == [("c_renamed", UNCHANGED)]
    nothing_changed = ListDiff((), (), ())
    assert [r.subject_id for r in rescreen(lists.screener, [renamed, reordered], lists.new, nothing_changed, {})] == [
        "c_renamed"
    ]


def test_needs_full_screening() -> None:
    assert not needs_full_screening(["Ravi Kumar Sharma"], ["SHARMA, Ravi Kumar"])
    assert not needs_full_screening(["José Núñez"], ["jose nunez"])
    assert not needs_full_screening(["Ravi Sharma", "Ravi K Sharma"], ["Ravi Sharma"])  # a name dropped
    assert needs_full_screening(["Ravi Sharma"], ["Ravi Sharma", "Ravi Verma"])
    assert needs_full_screening(["Priya Iyer"], ["Priya Menon"])


def test_rescreen_refuses_a_stale_screener_and_foreign_diffs(lists: Lists) -> None:
    diff = diff_lists(list_manifest(lists.old), lists.new)
    stale = Screener([lists.old])
    with pytest.raises(InvalidInputError, match="does not hold the current ofac_sdn:7846: build it over the new list"):
        rescreen(stale, [Subject("c", ("X Y",))], lists.new, diff, {})
    with pytest.raises(InvalidInputError, match="not an entry of the list ofac_sdn"):
        rescreen(lists.screener, [], lists.new, ListDiff(("un_consolidated:1",), (), ()), {})
    with pytest.raises(InvalidInputError, match="does not hold"):
        rescreen(lists.screener, [], lists.new, ListDiff(("ofac_sdn:424242424",), (), ()), {})
    with pytest.raises(InvalidInputError, match="not an entry of the list ofac_sdn"):
        diff_lists({"un_consolidated:6908002": "0" * 64}, lists.new)
    with pytest.raises(InvalidInputError, match="at least one name"):
        Subject("c", ())


def test_the_manifest_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    manifest = {"ofac_sdn:1": "a" * 64, "ofac_sdn:2": "b" * 64}
    write_manifest(path, manifest)
    assert read_manifest(path) == manifest
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert (doc["format"], doc["version"], doc["list_name"]) == ("c360.watchlist_manifest", 1, "ofac_sdn")
    write_manifest(path, {})
    assert read_manifest(path) == {}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temporary file left


@pytest.mark.parametrize(
    ("manifest", "error"),
    [
        ({"ofac_sdn:1": "xyz"}, "not a SHA-256"),
        ({"nolist": "a" * 64}, "not an entry key"),
        ({"ofac_sdn:1": "a" * 64, "un_consolidated:2": "b" * 64}, "of one list"),
    ],
)
def test_a_bad_manifest_is_not_written(tmp_path: Path, manifest: dict[str, str], error: str) -> None:
    with pytest.raises(InvalidInputError, match=error):
        write_manifest(tmp_path / "m.json", manifest)
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{", "not a JSON manifest"),
        ('{"format": "other", "version": 1, "entries": {}}', "not a watchlist manifest"),
        ('{"format": "c360.watchlist_manifest", "version": 2, "entries": {}}', "manifest version 2"),
        ('{"format": "c360.watchlist_manifest", "version": 1, "entries": []}', "must be a mapping"),
        (
            '{"format": "c360.watchlist_manifest", "version": 1, "list_name": "un_consolidated",'
            ' "entries": {"ofac_sdn:1": "' + "a" * 64 + '"}}',
            "not of the list 'un_consolidated'",
        ),
    ],
)
def test_an_unreadable_manifest_is_refused(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=error):
        read_manifest(path)


def test_a_failed_write_keeps_the_old_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.json"
    write_manifest(path, {"ofac_sdn:1": "a" * 64})

    def broken_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(InvalidInputError, match=r"cannot write the manifest .*No space left"):
        write_manifest(path, {"ofac_sdn:2": "b" * 64})
    assert read_manifest(path) == {"ofac_sdn:1": "a" * 64}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
