"""How the masking rules change one value: age and income ranges, recognisable fragments, hashing's form.

The role policy (:mod:`~c360.graphql.policy`) decides which rule a role gets for a field; these are the
rules' value transformations, free of any policy.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any


def as_date(value: Any) -> date | None:
    """A date from a date, a datetime or an ISO string; None otherwise."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def age_on(born: date, today: date) -> int:
    """Whole years from ``born`` to ``today``."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def age_of(value: Any, today: date) -> int | None:
    """An age in years from an age (int or digits) or a birth date (date or ISO string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        years = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        years = int(value.strip())
    else:
        born = as_date(value)
        if born is None:
            return None
        years = age_on(born, today)
    return years if 0 <= years < 150 else None


def age_band(age: int) -> str:
    """The decade of an age: 34 -> ``"30-39"``."""
    low = age // 10 * 10
    return f"{low}-{low + 9}"


def number(value: Any) -> float | None:
    """A number from a number or a string of digits (commas and underscores allowed); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", "").replace("_", ""))
        except ValueError:
            return None
    return None


def thousands(n: int) -> str:
    """``50000`` as ``"50k"``; other amounts as they are."""
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def normalise(value: Any) -> str:
    """The form a value is hashed in: dates as ``YYYY-MM-DD``, text stripped and case-folded."""
    if isinstance(value, datetime):
        value = value.date()
    text = value.isoformat() if isinstance(value, date) else str(value)
    return text.strip().casefold()


def keep_last(text: str, keep: int = 4) -> str:
    """Stars for all but the last ``keep`` letters or digits (all stars when there are no more)."""
    chars = [c for c in text if c.isalnum()]
    if len(chars) <= keep:
        return "*" * max(len(chars), 3)
    return "*" * (len(chars) - keep) + "".join(chars[-keep:])


def partial(name: str, value: Any) -> str | None:
    """The recognisable fragment of a value (see policy.yaml)."""
    if name == "date_of_birth":
        born = as_date(value)
        return str(born.year) if born else None
    text = str(value).strip()
    if not text:
        return None
    if name == "email":
        local, at, domain = text.rpartition("@")
        return f"{local[0]}***@{domain}" if at and local and domain else "***"
    if name == "phone":
        return keep_last("".join(c for c in text if c.isdigit()))
    if name in ("national_id", "customer_number"):
        return keep_last(text)
    if name == "postcode":
        text = text.upper()
        outward, space, _ = text.partition(" ")
        if space:
            return f"{outward} ***"
        return text[:3] + "*" * (len(text) - 3) if len(text) > 3 else "*" * len(text)
    return f"{text[0]}***"  # first_name, last_name
