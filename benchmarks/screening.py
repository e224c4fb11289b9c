"""Watchlist screening: precision, recall and time per name on a labelled set built from the lists.

    python benchmarks/screening.py                  # 1,500 positives, 1,500 negatives, seed 16
    python benchmarks/screening.py --positives 3000 --negatives 3000 --seed 7

Positives are variants of listed individuals' names (OFAC SDN and UN, as published in
/work/shared/data/watchlists): transliteration-style spelling changes, accents added, parts reordered,
a given name as an initial, one typo, a middle name dropped, an alias used. A positive counts as found
when its source entry is among the hits. Negatives are ordinary names from Faker in several locales and
from c360's synthetic generator, none of which is a listed name (checked on the normalised tokens); a
negative with any hit is a false positive. The set is split by the seed into a tuning half, on which
the threshold is chosen (best F1), and a held-out half, on which everything reported is measured.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from c360.connectors.synthetic.people import Generator
from c360.connectors.watchlists import load_ofac, load_un
from c360.graph.watchlist import ListEntry
from c360.resolution.screening import Hit, Screener, ScreeningConfig
from c360.resolution.screening_names import tokens
from faker import Faker

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "watchlists"
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "ru_RU", "tr_TR", "pl_PL", "hi_IN", "ar_AA")
SPELLINGS = (
    ("mohammed", "muhammad"),
    ("muhammad", "mohamed"),
    ("mohamed", "mohammad"),
    ("ou", "u"),
    ("oo", "u"),
    ("ee", "i"),
    ("ph", "f"),
    ("kh", "h"),
    ("q", "k"),
    ("dh", "d"),
    ("y", "i"),
    ("u", "ou"),
    ("i", "y"),
)
ACCENTS = str.maketrans({"e": "é", "a": "á", "o": "ö", "u": "ü", "i": "í", "c": "ç", "n": "ñ"})
KINDS = ("transliteration", "accents", "reordered", "initial", "typo", "dropped_middle", "alias")


def natural(entry: ListEntry) -> list[str]:
    """The entry's name tokens in the order people write them (OFAC: given names, then the last name)."""
    roles = {p.role: p.value for p in entry.name_parts}
    if "last" in roles:
        return (roles.get("given", "") + " " + roles["last"]).split()
    return entry.name.split()


def variant(entry: ListEntry, kind: str, rng: random.Random) -> str | None:
    """One variant of the entry's name, or None when the entry cannot give this kind."""
    parts = natural(entry)
    if len(parts) < 2:
        return None
    if kind == "transliteration":
        low = " ".join(parts).lower()
        for a, b in rng.sample(SPELLINGS, len(SPELLINGS)):
            if a in low:
                return low.replace(a, b, 1).title()
        return None
    if kind == "accents":
        i = rng.randrange(len(parts))
        return " ".join(p.lower().translate(ACCENTS) if j == i else p for j, p in enumerate(parts))
    if kind == "reordered":
        shuffled = parts[:]
        while shuffled == parts:
            rng.shuffle(shuffled)
        return " ".join(shuffled)
    if kind == "initial":
        if len(parts) < 2 or len(parts[0]) < 2:
            return None
        return " ".join([parts[0][0] + ".", *parts[1:]])
    if kind == "typo":
        i = max(range(len(parts)), key=lambda j: len(parts[j]))
        w = parts[i]
        if len(w) < 5:
            return None
        k = rng.randrange(1, len(w) - 1)
        op = rng.choice(("sub", "del", "swap"))
        if op == "sub":
            w = w[:k] + rng.choice("aeioulnrst") + w[k + 1 :]
        elif op == "del":
            w = w[:k] + w[k + 1 :]
        else:
            w = w[: k - 1] + w[k] + w[k - 1] + w[k + 1 :]
        return " ".join([*parts[:i], w, *parts[i + 1 :]])
    if kind == "dropped_middle":
        if len(parts) < 3:
            return None
        i = rng.randrange(1, len(parts) - 1)
        return " ".join(parts[:i] + parts[i + 1 :])
    good = [
        a for a in entry.aliases if a.quality == "good" and a.type != "original_script" and len(a.name.split()) >= 2
    ]
    return rng.choice(good).name.replace(",", "") if good else None


def positives(individuals: list[ListEntry], n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """(query, kind, source entry key) for n variants, the kinds in turn."""
    out: list[tuple[str, str, str]] = []
    tries = 0
    while len(out) < n and tries < n * 50:
        tries += 1
        entry = rng.choice(individuals)
        kind = KINDS[len(out) % len(KINDS)]
        query = variant(entry, kind, rng)
        if query:
            out.append((query, kind, entry.key))
    return out


def negatives(listed: set[tuple[str, ...]], n: int, seed: int) -> list[tuple[str, str]]:
    """(query, source) for n ordinary names that are not listed names."""
    fakers = []
    for loc in LOCALES:
        f = Faker(loc)
        f.seed_instance(seed)
        fakers.append((loc, f))
    gen = Generator(seed)
    out: list[tuple[str, str]] = []
    i = 0
    while len(out) < n:
        i += 1
        if i % 4 == 0:
            p = gen.person(i)
            name, source = f"{p.first_name} {p.last_name}", "synthetic"
        else:
            loc, f = fakers[i % len(fakers)]
            name, source = f"{f.first_name()} {f.last_name()}", loc
        if tuple(sorted(tokens(name)[0])) not in listed:
            out.append((name, source))
    return out


def f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1."""
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def main() -> None:
    """Build the set, tune the threshold on one half, report on the other."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--positives", type=int, default=1500)
    ap.add_argument("--negatives", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    lists = [load_ofac(DATA / "ofac"), load_un(DATA / "un" / "consolidated.xml")]
    t0 = time.perf_counter()
    screener = Screener(lists)
    build = time.perf_counter() - t0
    listed = {tuple(sorted(tokens(n)[0])) for e in screener.entries for n in [e.name, *(a.name for a in e.aliases)]}
    individuals = [e for e in screener.entries if e.kind == "individual"]
    pos = positives(individuals, args.positives, rng)
    neg = negatives(listed, args.negatives, args.seed)
    items = [(q, True, key, kind) for q, kind, key in pos] + [(q, False, "", src) for q, src in neg]
    rng.shuffle(items)
    tune, held = items[: len(items) // 2], items[len(items) // 2 :]

    def scores(part: list[tuple[str, bool, str, str]]) -> list[tuple[float, bool]]:
        """Per query: the score that decides it (positives: the source entry's; negatives: the best)."""
        out = []
        for q, is_pos, key, _ in part:
            hits = screener.screen(q, threshold=0.0)
            if is_pos:
                out.append((max((h.score for h in hits if h.entry.key == key), default=-1.0), True))
            else:
                out.append((max((h.score for h in hits), default=-1.0), False))
        return out

    # Tuning half only: for each token_match, the threshold sweep; the highest threshold whose F1 is within
    # 0.005 of the best (a plateau is common; the higher end costs less review work).
    results = []
    for token_match in (0.85, 0.87, 0.9, 0.92):
        screener.config = ScreeningConfig(token_match=token_match)
        tuned = scores(tune)
        for t in (x / 100 for x in range(60, 100)):
            tp_ = sum(s >= t for s, p in tuned if p)
            fp_ = sum(s >= t for s, p in tuned if not p)
            fn_ = sum(s < t for s, p in tuned if p)
            results.append((f1(tp_, fp_, fn_)[2], t, token_match))
    top = max(r[0] for r in results)
    f_best, best, best_match = max((r for r in results if r[0] >= top - 0.005), key=lambda r: (r[1], r[0]))
    config = ScreeningConfig(token_match=best_match, threshold=best)
    screener.config = config
    print(f"index: {len(screener)} entries, build {build:.2f} s")
    print(
        f"tuning half: {len(tune)} queries; best F1 {top:.3f}; chosen token_match {best_match}, threshold {best:.2f} "
        f"(F1 {f_best:.3f}); the defaults are token_match {ScreeningConfig().token_match}, "
        f"threshold {ScreeningConfig().threshold}"
    )
    times: list[float] = []
    tp = fp = fn = 0
    per_kind: dict[str, list[int]] = {}
    worst: list[tuple[float, str, Hit]] = []
    for q, is_pos, key, kind in held:
        t = time.perf_counter()
        hits = screener.screen(q)
        times.append(time.perf_counter() - t)
        if is_pos:
            found = any(h.entry.key == key for h in hits)
            tp, fn = tp + found, fn + (not found)
            per_kind.setdefault(kind, [0, 0])[0 if found else 1] += 1
        elif hits:
            fp += 1
            worst.append((hits[0].score, q, hits[0]))
    p, r, f = f1(tp, fp, fn)
    n_pos = sum(1 for i in held if i[1])
    print(f"held-out half: {len(held)} queries ({n_pos} positives, {len(held) - n_pos} negatives)")
    print(f"  precision {p:.3f}  recall {r:.3f}  F1 {f:.3f}  (tp {tp}, fp {fp}, fn {fn})")
    for kind, (found, missed) in sorted(per_kind.items()):
        print(f"  recall {kind:<16} {found / (found + missed):.3f} ({found}/{found + missed})")
    ms = sorted(x * 1000 for x in times)
    p99 = ms[min(len(ms) - 1, round(0.99 * len(ms)))]
    print(f"  time per name: median {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms, max {ms[-1]:.2f} ms")
    worst.sort(key=lambda w: -w[0])
    print(f"worst false positives ({len(worst)}):")
    for score, q, hit in worst[:5]:
        print(f"- {q!r} -> {hit.entry.key} {hit.matched_name!r} score {score:.3f}")
        print("    " + hit.explanation.text().replace("\n", "\n    "))


if __name__ == "__main__":
    main()
