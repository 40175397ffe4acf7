"""Published figures compared to the digits they were printed with."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

DATA = Path(__file__).parent / "data"


def printed(value: float, text: str) -> None:
    """Assert that ``value`` rounds to the figure printed as ``text`` ("0.0517", "-2.11", "15.26").

    The tolerance is half a unit in the last printed place (plus a hair for binary floating point),
    so a figure printed with 8 decimals is checked to 8 decimals.
    """
    exponent = Decimal(text).as_tuple().exponent
    tolerance = 0.5 * 10.0**exponent * (1 + 1e-6) + 1e-15
    assert abs(value - float(text)) <= tolerance, f"{value!r} does not print as {text}"
