"""Watchlist screening against the published OFAC and UN lists: what hits, what does not, and why."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from c360.connectors.watchlists import load_ofac, load_un
from c360.graph.errors import InvalidInputError
from c360.graph.watchlist import ListEntry, Watchlist
from c360.resolution.screening import Hit, Screener, ScreeningConfig
from c360.resolution.screening_names import jaro_winkler_bound, normalise, phonetic_key, tokens
from c360.resolution.similarity import jaro_winkler
from pydantic import ValidationError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "watchlists"


@pytest.fixture(scope="module")
def screener() -> Screener:
    return Screener([load_ofac(DATA / "ofac"), load_un(DATA / "un" / "consolidated.xml")])


def _hit(hits: list[Hit], key: str) -> Hit | None:
    return next((h for h in hits if h.entry_key == key), None)


def test_normalisation_and_phonetic_keys() -> None:
    assert normalise("AL-TIKRITI, Abid") == "al tikriti abid"
    assert normalise("\u041c\u0430'ruf  Éric") == "maruf eric"  # Cyrillic Ma
    assert tokens("Dr. Usama bin Laden") == (("usama", "laden"), ("bin",))
    assert phonetic_key("muhammad") == phonetic_key("mohamed") == "m530"
    assert phonetic_key("tymczak") == "t522"


def test_the_jaro_winkler_bound_never_undercuts_it(screener: Screener) -> None:
    words = sorted({t for e in screener.entries[:3000] for t in tokens(e.name)[0] if len(t) > 1})[:300]
    for a in words:
        for b in words[::7]:
            assert jaro_winkler_bound(a, b) >= jaro_winkler(a, b) - 1e-12, (a, b)


def test_exact_listed_name_scores_one_with_explanation(screener: Screener) -> None:
    hits = screener.screen("Manuel Antonio Noriega")
    top = hits[0]
    assert top.entry_key == "ofac_sdn:1572"
    assert top.score >= 0.99 and top.alias is None and top.matched_name == "NORIEGA, Manuel Antonio"
    ex = top.explanation
    assert [(p.query, p.entry, p.method) for p in ex.pairs] == [
        ("manuel", "manuel", "exact"),
        ("antonio", "antonio", "exact"),
        ("noriega", "noriega", "exact"),
    ]
    assert not ex.unmatched_query and not ex.unmatched_entry
    assert ex.rule.startswith("hit: score 1.000 >= threshold")
    assert "noriega ~ noriega: 1.000 (exact)" in ex.text()
    assert len(top.entry.content_hash()) == 64


def test_reordered_and_transliterated_names_hit(screener: Screener) -> None:
    assert (h := _hit(screener.screen("Noriega Manuel Antonio"), "ofac_sdn:1572")) is not None and h.score >= 0.99
    cyrillic = _hit(screener.screen("Мин Аунг Хлаинг"), "ofac_sdn:27225")  # Min Aung Hlaing
    assert cyrillic is not None
    assert ("khlaing", "hlaing") in [(p.query, p.entry) for p in cyrillic.explanation.pairs]
    accented = screener.screen("Éric Badège")
    assert {h.entry_key for h in accented} >= {"ofac_sdn:15718", "un_consolidated:6907993"}
    assert _hit(screener.screen("Osama bin Ladin"), "ofac_sdn:6365") is not None


def test_one_typo_and_dropped_middle_name_hit(screener: Screener) -> None:
    typo = _hit(screener.screen("Erik Badeghe"), "un_consolidated:6907993")
    assert typo is not None and typo.score < 1
    dropped = _hit(screener.screen("Abid Mahmud Tikriti"), "ofac_sdn:7846")
    assert dropped is not None and dropped.explanation.unmatched_entry == ("hamid",)


def test_initials_hit(screener: Screener) -> None:
    hit = _hit(screener.screen("E. Badege"), "un_consolidated:6907993")
    assert hit is not None
    assert ("e", "eric", "initial") in [(p.query, p.entry, p.method) for p in hit.explanation.pairs]
    # An initial that does not fit the listed name pairs with nothing.
    assert _hit(screener.screen("P. Badege"), "un_consolidated:6907993") is None


def test_common_surname_of_another_person_does_not_hit(screener: Screener) -> None:
    assert _hit(screener.screen("Carmen Noriega"), "ofac_sdn:1572") is None
    assert _hit(screener.screen("Maria Badege"), "un_consolidated:6907993") is None
    assert screener.screen("George Bush") == []


def test_a_first_name_alone_never_hits(screener: Screener) -> None:
    for name in ("Mohammed", "Muhammad", "Ali", "Usama", "Manuel"):
        assert screener.screen(name) == [], name
    # Even with a low threshold a single shared token does not make a hit.
    assert screener.screen("Mohammed Smithers", threshold=0.0) == []


def test_a_one_token_listed_name_hits_only_that_exact_token(screener: Screener) -> None:
    hits = screener.screen("Faiz")
    assert [h.entry_key for h in hits] == ["un_consolidated:110913"]
    assert "one-token listed name" in hits[0].explanation.rule
    assert screener.screen("Faiz Khan") == []


def test_far_apart_dob_lowers_a_borderline_name_below_the_threshold(screener: Screener) -> None:
    name = "Abid Mahmud Tikriti"  # the middle name dropped: a hit on the name alone, below 1
    alone = _hit(screener.screen(name), "ofac_sdn:7846")
    assert alone is not None and alone.score < 0.95
    assert _hit(screener.screen(name, date_of_birth=date(1990, 1, 1)), "ofac_sdn:7846") is None
    far = _hit(screener.screen(name, date_of_birth=date(1990, 1, 1), threshold=0.0), "ofac_sdn:7846")
    assert far is not None and far.score < alone.score
    assert [(a.evidence, a.finding) for a in far.explanation.adjustments] == [("date_of_birth", "far")]
    same_year = _hit(screener.screen(name, date_of_birth=date(1957, 6, 1)), "ofac_sdn:7846")
    assert same_year is not None and same_year.score > alone.score
    assert same_year.explanation.adjustments[0].finding == "within"


def test_exact_dob_and_nationality_are_evidence(screener: Screener) -> None:
    base = _hit(screener.screen("Douglas Mpamo"), "un_consolidated:6908002")
    same = _hit(screener.screen("Douglas Mpamo", date_of_birth=date(1965, 12, 28)), "un_consolidated:6908002")
    assert base is not None and same is not None and same.score > base.score
    assert same.explanation.adjustments[0].finding == "same_date"
    other = _hit(screener.screen("Douglas Mpamo", nationality="France", threshold=0.0), "un_consolidated:6908002")
    congo = _hit(screener.screen("Douglas Mpamo", nationality="Congo"), "un_consolidated:6908002")
    assert other is not None and congo is not None and other.score < base.score < congo.score
    assert [a.finding for a in other.explanation.adjustments] == ["different"]


def test_aliases_hit_and_say_which(screener: Screener) -> None:
    hit = _hit(screener.screen("Abed Mahmoud Hammud"), "ofac_sdn:7846")
    assert hit is not None and hit.alias is not None
    assert hit.alias.name == "HAMMUD, Abed Mahmoud" and hit.matched_name == "HAMMUD, Abed Mahmoud"
    assert hit.score >= 0.99


def test_weak_alias_counts_less(screener: Screener) -> None:
    hit = _hit(screener.screen("Abu Bakr al-Jaziri", threshold=0.0), "ofac_sdn:7148")
    assert hit is not None and hit.alias is not None and hit.alias.quality == "low"
    assert hit.explanation.name_score == 1.0 and hit.score < 1.0
    assert hit.explanation.adjustments[0].evidence == "alias_quality"


def test_entities_only_when_asked(screener: Screener) -> None:
    assert _hit(screener.screen("National Bank of Cuba"), "ofac_sdn:306") is None
    hit = _hit(screener.screen("National Bank of Cuba", kinds=("entity",)), "ofac_sdn:306")
    assert hit is not None and hit.alias is not None and hit.alias.name == "NATIONAL BANK OF CUBA"
    both = screener.screen("Banco Nacional de Cuba", kinds=("individual", "entity"))
    assert _hit(both, "ofac_sdn:306") is not None


def test_screen_refuses_bad_arguments(screener: Screener) -> None:
    with pytest.raises(InvalidInputError):
        screener.screen("  ")
    with pytest.raises(InvalidInputError):
        screener.screen("Eric Badege", kinds=("person",))
    with pytest.raises(InvalidInputError):
        screener.screen("Eric Badege", kinds="individual")
    with pytest.raises(InvalidInputError):
        screener.screen("Eric Badege", date_of_birth=datetime(1971, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        screener.screen("Eric Badege", nationality="--")


def test_config_validation() -> None:
    with pytest.raises(ValidationError):
        ScreeningConfig(threshold=1.5)
    with pytest.raises(ValidationError):
        ScreeningConfig(thresold=0.9)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        ScreeningConfig(token_partial=0.95, token_match=0.9)
    assert ScreeningConfig().threshold == 0.88
    assert ScreeningConfig.model_fields["threshold"].description


def test_threshold_from_config_and_index_on_a_small_list() -> None:
    entry = ListEntry("ofac_sdn", "1", "individual", "SMITH, John Michael")
    wl = Watchlist("ofac_sdn", None, (entry,))
    strict = Screener([wl], ScreeningConfig(threshold=0.99))
    loose = Screener([wl], ScreeningConfig(threshold=0.8))
    assert strict.screen("John Smith") == []
    assert [h.entry_key for h in loose.screen("John Smith")] == ["ofac_sdn:1"]
    assert len(loose) == 1
