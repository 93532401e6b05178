"""What the API hands back to look at: a job's metrics and an experiment's comparison, as tables in a notebook
(the templates report.html is made of) and as pandas frames when pandas is installed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fto.orchestrator.eval.html import comparison_context, loss_chart
from fto.orchestrator.templates import Markup, render
from fto.schemas import Experiment, Metric
from fto.schemas.results import ExperimentResults, ModelResult, PairedTest

FIELDS = ("step", "total_steps", "epoch", "loss", "valid_loss", "learning_rate", "grad_norm", "tokens_per_second")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("to_pandas() needs pandas: pip install pandas") from None
    return pandas


class Metrics(list[Metric]):
    """A job's training metrics, by step (a list of Metric), with a table and a loss chart in a notebook."""

    def __init__(self, metrics: list[Metric], label: str = "job") -> None:
        super().__init__(metrics)
        self.label = label

    def to_pandas(self) -> Any:
        """One row per step: step, total_steps, epoch, loss, valid_loss, learning_rate, grad_norm, tokens/s."""
        return _pandas().DataFrame([{k: getattr(m, k) for k in FIELDS} for m in self], columns=list(FIELDS))

    def _repr_html_(self) -> str:
        curves = {f"{self.label} train": [(m.step, m.loss) for m in self if m.loss is not None]}
        valid = [(m.step, m.valid_loss) for m in self if m.valid_loss is not None]
        if valid:
            curves[f"{self.label} validation"] = valid
        chart = Markup(loss_chart(curves, width=640, height=220))
        return render("notebook/metrics.html", metrics=list(self)[-10:], count=len(self), chart=chart)


class Comparison:
    """Every evaluated model of an experiment: scores with 95% intervals, the paired tests between them, a ranking,
    cost and latency — `results` is the typed record `fto compare --json` prints."""

    def __init__(
        self, experiment: Experiment, results: ExperimentResults, report_path: Path | None = None, store: Any = None
    ) -> None:
        self.experiment, self.results, self.report_path, self.store = experiment, results, report_path, store

    @property
    def scorers(self) -> list[str]:
        """The scorers, in the job file's order."""
        return list(self.results.scorers)

    @property
    def models(self) -> list[ModelResult]:
        """Each evaluated model (its target: section, role, model, job) with its scores and costs."""
        return list(self.results.models)

    @property
    def scores(self) -> dict[str, dict[str, float]]:
        """Model label → scorer → score."""
        return {m.label: {s: v.value for s, v in m.scores.items()} for m in self.results.models}

    @property
    def paired(self) -> list[PairedTest]:
        """Paired tests on the same examples: each fine-tuned model against its base and against every other."""
        return list(self.results.comparisons)

    def to_pandas(self) -> Any:
        """One row per model: each scorer's score and its interval (`SCORER_low`, `SCORER_high`), examples."""
        rows = []
        for m in self.results.models:
            row: dict[str, Any] = {"model": m.label, "role": m.target.role.value, "examples": m.examples}
            for scorer in self.scorers:
                found = m.scores.get(scorer)
                row |= {scorer: found.value if found else math.nan,
                        f"{scorer}_low": found.low if found and found.low is not None else math.nan,
                        f"{scorer}_high": found.high if found and found.high is not None else math.nan}  # fmt: skip
            rows.append(row)
        return _pandas().DataFrame(rows).set_index("model")

    def _repr_html_(self) -> str:
        from fto.orchestrator.store import Store

        store = Store(self.store.location if self.store else None)  # its own connection: a notebook's may be gone
        try:
            context = comparison_context(store, self.experiment, self.results)
        finally:
            store.close()
        return render("notebook/comparison.html", report_path=self.report_path, **context)

    def __repr__(self) -> str:
        shown = ", ".join(f"{t} {s}" for t, s in self.scores.items())
        return f"Comparison({self.experiment.id}: {shown})"
