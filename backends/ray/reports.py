"""What a Ray job tells fto: status, events and metrics as marked lines in the job's own log.

fto often runs on a laptop that cannot see the cluster's disks; the Ray Jobs API's log is the one channel it can
always read. Ray forwards worker output to the job log with a prefix (and may repeat a line), so each report
carries its source and a sequence number, and readers keep the first copy of each.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from dataclasses import dataclass
from typing import Any

MARK = "FTO-REPORT"
_LINE = re.compile(MARK + r" (\{.*\})\s*$")


class Reporter:
    """Prints reports from one process (`source`: the driver, or training rank 0)."""

    def __init__(self, source: str):
        self.source = source
        self._numbers = itertools.count(1)

    def report(self, kind: str, body: dict[str, Any]) -> None:
        """One report: kind is status, event or metric."""
        line = json.dumps({"source": self.source, "n": next(self._numbers), "kind": kind, "body": body})
        print(f"{MARK} {line}", file=sys.stdout, flush=True)


@dataclass(frozen=True)
class Report:
    source: str
    n: int
    kind: str
    body: dict[str, Any]


def parse(log: str) -> list[Report]:
    """Every report in a job log, once each, in the order they first appear."""
    seen: set[tuple[str, int]] = set()
    found = []
    for line in log.splitlines():
        match = _LINE.search(line)
        if not match:
            continue
        try:
            data = json.loads(match.group(1))
            report = Report(str(data["source"]), int(data["n"]), str(data["kind"]), dict(data["body"]))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a crash mid-print
        if (report.source, report.n) not in seen:
            seen.add((report.source, report.n))
            found.append(report)
    return found
