"""Loss curves for the dashboard's charts, downsampled on the server: a chart never receives more than
`MAX_POINTS` points per series, however long the run (the first and last points and each bucket's lowest and
highest survive, so a spike still shows)."""

from __future__ import annotations

from typing import Any

MAX_POINTS = 500  # per series, whatever the run's length
TOTAL_POINTS = 50_000  # per chart: with many series each gets fewer (never under MIN_POINTS), so a chart of
MIN_POINTS = 50  # 1,000 jobs still draws at once


def per_series(count: int) -> int:
    """Points each of `count` series may carry."""
    return max(MIN_POINTS, min(MAX_POINTS, TOTAL_POINTS // max(1, count)))


XS = ("step", "tokens")


def downsample(xs: list[float], ys: list[float], limit: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """At most `limit` points of the series (xs ascending): the ends, and each bucket's minimum and maximum."""
    if len(xs) <= limit:
        return xs, ys
    buckets = max(1, (limit - 2) // 2)
    size = (len(xs) - 2) / buckets
    keep = [0]
    for b in range(buckets):
        start, stop = 1 + int(b * size), 1 + int((b + 1) * size)
        if start >= stop:
            continue
        window = range(start, stop)
        low, high = min(window, key=ys.__getitem__), max(window, key=ys.__getitem__)
        keep += sorted({low, high})
    keep.append(len(xs) - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]


# (kind, metric): losses, and RFT's rewards (the dashboard draws those on an axis of their own)
KINDS = (("train", "loss"), ("validation", "valid_loss"), ("reward", "reward"), ("validation reward", "valid_reward"))


def loss_series(
    metrics: dict[str, list[dict[str, Any]]],
    labels: dict[str, str],
    tokens: dict[str, int | None],
    axis: str = "step",
    limit: int = MAX_POINTS,
) -> list[dict[str, Any]]:
    """One series per job and kind (train, validation): {job, label, kind, x, y}, each at most `limit` points.

    With axis="tokens", a step is placed at the tokens trained by then — steps × the job's trained tokens per step,
    known once a provider reports the total; a job without it is left out rather than drawn on a wrong axis.
    """
    series = []
    for job_id, rows in metrics.items():
        scale = 1.0
        if axis == "tokens":
            total_steps = next((r.get("total_steps") for r in reversed(rows) if r.get("total_steps")), None)
            trained = tokens.get(job_id)
            if not trained or not total_steps:
                continue
            scale = trained / total_steps
        for kind, key in KINDS:
            points = [(r["step"] * scale, r[key]) for r in rows if r.get(key) is not None]
            if not points:
                continue
            xs, ys = downsample([p[0] for p in points], [p[1] for p in points], limit)
            series.append({"job": job_id, "label": f"{labels[job_id]} {kind}", "kind": kind, "x": xs, "y": ys})
    return series
