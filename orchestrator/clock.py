"""Today's date, as fto sees it: `FTO_TODAY` (YYYY-MM-DD) stands in for the calendar, so that dated rules
(a provider closing to new jobs) can be tried before the day comes."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

from fto.orchestrator.errors import ConfigError


def today() -> date:
    """The UTC date, or `FTO_TODAY` when set."""
    override = os.environ.get("FTO_TODAY")
    if override:
        try:
            return date.fromisoformat(override)
        except ValueError:
            raise ConfigError(f"FTO_TODAY={override!r} is not a date (YYYY-MM-DD)", field="FTO_TODAY") from None
    return datetime.now(UTC).date()
