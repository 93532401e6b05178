"""`fto data check`: the three common mistakes looked for before money is spent — too little data, poor data
(duplicates, near-duplicates, conflicts, leaks into the eval set, empty or cut answers, odd answers), and sensitive
data (e-mail addresses, phone numbers, card numbers, IBANs, keys). Every finding names its file and lines.

The checks (numpy and MinHash) load on first use; the report's types (report.py) are light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fto.orchestrator.data.check.report import CheckReport, Issue

if TYPE_CHECKING:
    from fto.orchestrator.data.check.checks import CheckOptions, check_file, check_records

__all__ = ["CheckOptions", "CheckReport", "Issue", "check_file", "check_records"]


def __getattr__(name: str) -> Any:
    if name in ("CheckOptions", "check_file", "check_records"):
        from fto.orchestrator.data.check import checks

        return getattr(checks, name)
    raise AttributeError(name)
