"""The vault port's contract (sealed identifiers by owner and kind, the blind index, compare-and-swap,
rotation beside a writer): every backend passes every test here."""

from __future__ import annotations

import queue
import random
import threading
from typing import Any

import pytest
from c360.graph.errors import ConflictError, InvalidInputError
from c360.graph.ports.base import MAX_BATCH
from c360.graph.store import GraphStore
from c360.graph.vault import RotationCounts, SealedUpdate, SecretItem, VaultKeys, rotate_vault
from stdnum import verhoeff

KEYS = VaultKeys.generate()


def aadhaar(n: int) -> str:
    base = f"{23_412_340_000 + n:011d}"
    return base + verhoeff.calc_check_digit(base)


def test_secrets_are_stored_replaced_and_read_back(store: GraphStore) -> None:
    one = KEYS.item("crm|1", "aadhaar", aadhaar(1))
    pan = KEYS.item("crm|1", "pan", "ABCPE1234F")
    assert store.get_secret("crm|1", "aadhaar") is None
    assert sorted(store.put_secrets([one, pan])) == [("crm|1", "aadhaar"), ("crm|1", "pan")]
    assert store.get_secret("crm|1", "aadhaar") == one and store.get_secret("crm|1", "pan") == pan
    assert store.put_secrets([one]) == []  # a replay changes nothing
    new = KEYS.item("crm|1", "aadhaar", aadhaar(2))
    assert store.put_secrets([new]) == [("crm|1", "aadhaar")]
    got = store.get_secret("crm|1", "aadhaar")
    assert got == new and got is not None and KEYS.open_item(got) == aadhaar(2)  # replaced, no history
    assert store.find_by_token("aadhaar", one.token) == []
    assert store.get_secret("crm|2", "aadhaar") is None


def test_equal_identifiers_are_found_by_their_token(store: GraphStore) -> None:
    store.put_secrets(
        [
            KEYS.item("crm|2", "aadhaar", aadhaar(7)),
            KEYS.item("app-9", "aadhaar", f"{aadhaar(7)[:4]} {aadhaar(7)[4:8]} {aadhaar(7)[8:]}"),
            KEYS.item("crm|1", "aadhaar", aadhaar(7)),
            KEYS.item("crm|3", "aadhaar", aadhaar(8)),
            KEYS.item("crm|4", "passport", "K1234567"),
            KEYS.item("crm|5", "national_id", "K1234567"),
        ]
    )
    assert store.find_by_token("aadhaar", KEYS.lookup_token("aadhaar", aadhaar(7))) == ["app-9", "crm|1", "crm|2"]
    assert store.find_by_token("passport", KEYS.lookup_token("passport", "K1234567")) == ["crm|4"]
    assert store.find_by_token("passport", KEYS.lookup_token("national_id", "K1234567")) == []


def test_secrets_under_a_key_are_paged_in_owner_and_kind_order(store: GraphStore) -> None:
    items = [
        KEYS.item(f"crm|{n}", kind, v) for n in range(4) for kind, v in (("aadhaar", aadhaar(n)), ("pan", "ABCPE1234F"))
    ]
    k2 = KEYS.rotated()
    store.put_secrets([*items, k2.item("crm|9", "pan", "ABCPE1234F")])
    assert store.secret_key_counts() == {"k1": 8, "k2": 1}
    pages: list[list[SecretItem]] = []
    after = None
    while page := store.secrets_with_key("k1", after=after, limit=3):
        pages.append(page)
        after = (page[-1].owner, page[-1].kind)
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [i for p in pages for i in p] == sorted(items, key=lambda i: (i.owner, i.kind))
    assert store.secrets_with_key("k1", after=("crm|1", "aadhaar"), limit=2) == [items[3], items[4]]
    assert [i.owner for i in store.secrets_with_key("k2")] == ["crm|9"]
    assert store.secrets_with_key("k7") == []


def test_replace_sealed_swaps_only_what_is_still_there(store: GraphStore) -> None:
    k2 = KEYS.rotated()
    a, b, c = (KEYS.item(f"crm|{n}", "aadhaar", aadhaar(n)) for n in (1, 2, 3))
    store.put_secrets([a, b, c])
    newer_b = KEYS.item("crm|2", "aadhaar", aadhaar(22))  # a writer changed b after the rotation read it
    store.put_secrets([newer_b])
    store.delete_secrets("crm|3")
    updates = [SealedUpdate(i.owner, i.kind, i.sealed, k2.rewrap(i.sealed, i.owner)) for i in (a, b, c)]
    assert store.replace_sealed(updates) == [("crm|1", "aadhaar")]
    got_a, got_b = store.get_secret("crm|1", "aadhaar"), store.get_secret("crm|2", "aadhaar")
    assert got_a is not None and got_a.key_id == "k2" and got_a.token == a.token
    assert k2.open_item(got_a) == aadhaar(1)
    assert got_b == newer_b  # not overwritten with the re-sealed old value
    assert store.get_secret("crm|3", "aadhaar") is None  # not brought back
    assert store.secret_key_counts() == {"k1": 1, "k2": 1}
    assert store.replace_sealed(updates[:1]) == []  # a second swap from the same old text finds it changed


def test_delete_secrets_of_some_kinds_or_all(store: GraphStore) -> None:
    store.put_secrets(
        [
            KEYS.item("crm|1", k, v)
            for k, v in (("aadhaar", aadhaar(1)), ("pan", "ABCPE1234F"), ("passport", "K1234567"))
        ]
        + [KEYS.item("crm|2", "pan", "ABCPE1234F")]
    )
    assert store.delete_secrets("crm|1", ["pan"]) == 1
    assert store.get_secret("crm|1", "pan") is None and store.get_secret("crm|2", "pan") is not None
    assert store.delete_secrets("crm|1", []) == 0
    assert store.delete_secrets("crm|1") == 2
    assert store.delete_secrets("crm|1") == 0
    assert store.secret_key_counts() == {"k1": 1}


def test_bad_arguments_are_refused(store: GraphStore) -> None:
    item = KEYS.item("crm|1", "pan", "ABCPE1234F")
    other = KEYS.item("crm|1", "pan", "ABCPE1234G")
    with pytest.raises(InvalidInputError):
        store.put_secrets(item)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.put_secrets([("crm|1", "pan", item.sealed, item.token)])  # type: ignore[list-item]
    with pytest.raises(ConflictError):
        store.put_secrets([item, other])
    with pytest.raises(InvalidInputError):
        store.put_secrets([KEYS.item(f"o{n}", "pan", "ABCPE1234F") for n in range(MAX_BATCH + 1)])
    for call in (
        lambda: store.get_secret("crm|1", "ssn"),
        lambda: store.find_by_token("pan", "XYZ"),
        lambda: store.secrets_with_key("K 1"),
        lambda: store.secrets_with_key("k1", limit=0),
        lambda: store.secrets_with_key("k1", after="crm|1"),  # type: ignore[arg-type]
        lambda: store.delete_secrets("crm|1", ["ssn"]),
        lambda: store.delete_secrets("", None),
        lambda: store.replace_sealed([item]),  # type: ignore[list-item]
    ):
        with pytest.raises(InvalidInputError):
            call()
    assert store.secret_key_counts() == {}  # nothing was written


class Racing:
    """The store as rotate_vault sees it, with a writer that changes one secret of each page it reads.

    After each page is read, the writer thread replaces the page's first secret and the read waits for
    it: that secret's compare-and-swap must then find a newer value.
    """

    def __init__(self, store: GraphStore, jobs: queue.Queue[Any]) -> None:
        self._store = store
        self._jobs = jobs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def secrets_with_key(self, key_id: str, **kw: Any) -> list[SecretItem]:
        page = self._store.secrets_with_key(key_id, **kw)
        if page:
            done = threading.Event()
            self._jobs.put((page[0].owner, done))
            assert done.wait(30)
        return page


def test_rotation_beside_a_writer_loses_no_update(store: GraphStore) -> None:
    old, new = KEYS, KEYS.rotated()
    owners = [f"crm|{n:03d}" for n in range(120)]
    latest = {o: aadhaar(n) for n, o in enumerate(owners)}
    store.put_secrets([old.item(o, "aadhaar", v) for o, v in latest.items()])
    jobs: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    writes = 0
    errors: list[BaseException] = []

    def writer() -> None:
        nonlocal writes
        rng = random.Random(5)
        try:
            while not stop.is_set():
                try:
                    owner, done = jobs.get(timeout=0.001)
                except queue.Empty:
                    owner, done = rng.choice(owners), None  # and a stream of writes besides
                value = aadhaar(1000 + writes)
                store.put_secrets([new.item(owner, "aadhaar", value)])  # a writer restarted on the new ring
                latest[owner] = value
                writes += 1
                if done is not None:
                    done.set()
        except BaseException as exc:
            errors.append(exc)

    seen: list[RotationCounts] = []
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        counts = rotate_vault(Racing(store, jobs), new, batch=7, progress=seen.append)  # type: ignore[arg-type]
    finally:
        stop.set()
        thread.join(30)
    assert not errors
    assert counts.complete and counts.failed == 0
    assert counts.skipped >= 1  # at least the secret changed after its page was read
    assert seen and seen[-1].rewrapped == counts.rewrapped and seen[-1].skipped == counts.skipped
    assert counts.rewrapped + counts.skipped >= len(owners) - writes  # each secret the writer never touched
    assert store.secret_key_counts() == {"k2": len(owners)}
    for owner in owners:
        item = store.get_secret(owner, "aadhaar")
        assert item is not None and item.key_id == "k2"
        assert new.open_item(item) == latest[owner]  # the writer's last value, not a re-sealed older one
        assert item.token == new.lookup_token("aadhaar", latest[owner])
    assert rotate_vault(store, new) == RotationCounts(0, 0, 0, complete=True)  # nothing left to do


def test_rotation_counts_what_does_not_open_and_stops_at_its_budget(store: GraphStore) -> None:
    new = KEYS.rotated()
    good = KEYS.item("crm|1", "pan", "ABCPE1234F")
    stranger = VaultKeys.generate().rotated().rotated().item("crm|2", "pan", "ABCPE1234F")  # under k3, not ours
    moved = SecretItem("crm|3", "pan", good.sealed, good.token)  # sealed for crm|1
    store.put_secrets([good, stranger, moved])
    assert rotate_vault(store, new, budget_seconds=0) == RotationCounts()  # out of time before the first page
    assert store.secret_key_counts() == {"k1": 2, "k3": 1}
    counts = rotate_vault(store, new, batch=1)
    assert counts == RotationCounts(rewrapped=1, skipped=0, failed=2, complete=True)
    assert store.secret_key_counts() == {"k1": 1, "k2": 1, "k3": 1}
    with pytest.raises(InvalidInputError):
        rotate_vault(store, new, batch=0)


def test_compare_and_swap_beside_a_writer_of_the_same_secret_loses_no_update(store: GraphStore) -> None:
    # The writer (old ring) changes one secret again and again; the swapper re-seals whatever it reads under
    # the new ring. Only the writer changes the value, so each read before a write must show its last value.
    old, new = KEYS, KEYS.rotated()
    store.put_secrets([old.item("crm|1", "aadhaar", aadhaar(0))])
    done, attempted = threading.Event(), threading.Event()
    swapped: list[int] = []
    errors: list[BaseException] = []

    def swapper() -> None:
        try:
            while not done.is_set():
                item = store.get_secret("crm|1", "aadhaar")
                assert item is not None
                if item.key_id != new.current:
                    update = SealedUpdate(item.owner, item.kind, item.sealed, new.rewrap(item.sealed, item.owner))
                    swapped.append(len(store.replace_sealed([update])))
                    attempted.set()
        except BaseException as exc:
            errors.append(exc)

    def resealed() -> bool:
        for _ in range(600):
            item = store.get_secret("crm|1", "aadhaar")
            if item is not None and item.key_id == new.current:
                return True
            attempted.wait(0.05)
            attempted.clear()
        return False

    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        for n in range(1, 120):
            item = store.get_secret("crm|1", "aadhaar")
            assert item is not None and new.open_item(item) == aadhaar(n - 1)
            if n % 10 == 0 and not resealed():  # now and then the writer waits for a swap: both surely run
                pytest.fail("the swapper never re-sealed the secret")
            store.put_secrets([old.item("crm|1", "aadhaar", aadhaar(n))])
    finally:
        done.set()
        thread.join(30)
    assert not errors
    item = store.get_secret("crm|1", "aadhaar")
    assert item is not None and new.open_item(item) == aadhaar(119)
    assert sum(swapped) >= 11  # at least each swap the writer waited for
