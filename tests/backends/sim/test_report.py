"""The HTML report: self-contained, with its charts, rendered for real in headless Chromium."""

import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
import yaml

from fto.orchestrator.store import Store
from tests.conftest import ANIMALS, run_fto

pytestmark = pytest.mark.slow  # runs an experiment and Chromium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def report(sim_server, tmp_path):
    server = sim_server()
    spec = {
        "name": "rep",
        "data": {"train": str(ANIMALS), "validation": 0.1},
        "backends": {
            "a": {"type": "sim", "url": server.url, "duration": 1.0, "min_poll_interval": 0.2},
            "b": {"type": "sim", "url": server.url, "duration": 1.5, "min_poll_interval": 0.2},
        },
        "eval": {"max_examples": 12, "scorers": ["exact_match", "rouge_l"]},
    }
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(spec))
    result = run_fto("run", str(job))
    assert result.returncode == 0, result.stderr
    (experiment,) = Store().experiments()
    return Store().path.parent / "experiments" / experiment.id / "report.html"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.seen.append((tag, dict(attrs)))


def test_the_report_is_self_contained_with_every_chart(report):
    text = report.read_text()
    tags = _Tags()
    tags.feed(text)
    ids = {attrs.get("id") for _, attrs in tags.seen}
    assert {"loss-curves", "scores-exact_match", "scores-rouge_l", "examples"} <= ids
    assert sum(1 for tag, attrs in tags.seen if tag == "polyline") == 2  # a loss curve per job
    assert sum(1 for tag, attrs in tags.seen if attrs.get("class") == "bar") == 2 * 4  # 4 models × 2 scorers
    assert not re.search(r"<script|src=[\"']https?:|href=[\"']https?:", text)  # nothing fetched from outside


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_chromium_renders_the_charts(report, tmp_path):
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, *profile, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=60
    )
    assert 'id="loss-curves"' in dom.stdout and dom.stdout.count("<polyline") == 2
    shot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, *FLAGS, *profile, "--window-size=1200,1400", f"--screenshot={shot}", report.as_uri()],
        capture_output=True,
        timeout=60,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a page of charts, not a blank one
