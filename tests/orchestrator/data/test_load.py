"""A job's data section → train, validation and eval sets, from any format, checked against the method."""

import pytest

from fto.orchestrator.data.load import load_splits
from fto.orchestrator.errors import DataError
from fto.schemas import JobSpec
from tests.conftest import SHARED_DATA


def _spec(train, method="sft", **data):
    return JobSpec.model_validate(
        {"name": "t", "method": method, "data": {"train": str(train), "validation": 0.1, **data}}
    )


def test_alpaca_trains_sft_with_a_seeded_held_out_eval_set():
    splits = load_splits(_spec(SHARED_DATA / "llama-factory" / "identity.json"))
    assert (len(splits.train), len(splits.validation)) == (82, 9)
    assert [e.source_line for e in splits.eval] == [v.source_line for v in splits.validation]
    assert splits.eval[0].prompt_and_reference()[1].role == "assistant"


def test_preference_pairs_train_dpo_and_evaluate_on_the_chosen_reply():
    splits = load_splits(_spec(SHARED_DATA / "llama-factory" / "v1_dpo_demo.jsonl", method="dpo"))
    assert len(splits.train) == 9 and len(splits.eval) == 1
    assert splits.eval[0].messages[-1] == splits.validation[0].chosen[-1]


def test_a_method_that_does_not_fit_the_data_is_refused_with_the_line():
    with pytest.raises(DataError, match="holds preference pairs, which method 'sft' cannot train on") as exc:
        load_splits(_spec(SHARED_DATA / "llama-factory" / "v1_dpo_demo.jsonl"))
    assert exc.value.line == 1
    with pytest.raises(DataError, match="holds single conversations, which method 'dpo'"):
        load_splits(_spec(SHARED_DATA / "gsm8k" / "test.jsonl", method="dpo"))


def test_invalid_training_data_stops_before_anything_is_submitted():
    with pytest.raises(DataError, match=r"empty assistant message \[missing_content\] \(and 3 more errors") as exc:
        load_splits(_spec(SHARED_DATA / "hh-rlhf" / "harmless-base_test.jsonl.gz", method="dpo"))
    assert exc.value.line == 87
