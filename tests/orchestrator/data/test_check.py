"""`fto data check` finds exactly the mistakes planted in a crafted dataset, with their lines; sensitive data stops
a job for a hosted backend until the user allows it; the real fixture files check clean or with pinned findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fto.orchestrator.data.check import check_file
from tests.conftest import SHARED_DATA, run_fto

TOPICS = [
    "rivers",
    "volcanoes",
    "glaciers",
    "deserts",
    "forests",
    "oceans",
    "mountains",
    "islands",
    "canyons",
    "lakes",
    "caves",
    "reefs",
    "plains",
    "valleys",
    "tundra",
    "swamps",
    "dunes",
    "fjords",
    "geysers",
    "deltas",
    "lagoons",
    "mesas",
    "steppes",
    "savannas",
    "marshes",
    "plateaus",
    "estuaries",
    "atolls",
    "buttes",
    "moors",
]


def _row(user: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def _question(i: int, topic: str) -> str:
    return (
        f"Write two sentences for a school leaflet number {i} about {topic}, mentioning how {topic} form, "
        f"where the largest {topic} on Earth are found, and one reason {topic} matter to people nearby."
    )


def _crafted(tmp_path: Path) -> tuple[Path, Path]:
    rows = [
        _row(_question(i, topic), f"{topic.title()} form slowly over time; case {i} shows how.")
        for i, topic in enumerate(TOPICS, 1)
    ]  # lines 1–30, all different
    rows += [rows[0], rows[0]]  # 31, 32: exact duplicates of line 1
    rows.append(
        _row(_question(2, "volcanoes").replace("school leaflet", "school flyer"), rows[1]["messages"][1]["content"])
    )  # 33 ≈ 2
    rows.append(_row(_question(3, "glaciers"), "Something else entirely."))  # 34: line 3's prompt, another answer
    rows.append(_row("What is the capital of Peru?", "   "))  # 35: an empty answer
    rows.append(_row("Summarise this report. " + "word " * 700, "A long report."))  # 36: over 500 tokens
    rows.append(_row("Forward this to jane.doe@acme-mail.co.uk please", "Done."))  # 37
    rows.append(_row("My number is +1 650-253-0000, call me", "Will do."))  # 38
    rows.append(_row("Card 4111 1111 1111 1111 was declined", "Try another card."))  # 39
    rows.append(_row("Pay to GB82 WEST 1234 5698 7654 32 today", "Paid."))  # 40
    rows.append(_row("Here is my key sk-abcdefghijklmnop1234 for the API", "Never share keys."))  # 41
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    held = [
        _row(_question(4, "deserts"), "Deserts form where little rain falls."),  # 1: line 4's prompt exactly
        _row(_question(5, "forests").replace("school leaflet", "school flyer"), "Forests grow."),  # 2: ≈ line 5
        _row("How many legs does a spider have?", "Eight."),  # 3: new
    ]
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in held))
    return train, eval_file


@pytest.mark.timeout(60)
def test_the_check_finds_exactly_what_was_planted_with_its_lines(tmp_path):
    train, eval_file = _crafted(tmp_path)
    result = run_fto("data", "check", str(train), "--eval", str(eval_file), "--max-tokens", "500", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    found = {(i["code"], tuple(i["lines"]), tuple(i["eval_lines"])) for i in report["issues"]}
    assert found == {
        ("too_little_data", (), ()),
        ("duplicate", (1, 31, 32), ()),
        ("near_duplicate", (2, 33), ()),
        ("conflict", (3, 34), ()),
        ("empty_answer", (35,), ()),
        ("cut_answer", (36,), ()),
        ("sensitive_email", (37,), ()),
        ("sensitive_phone", (38,), ()),
        ("sensitive_card", (39,), ()),
        ("sensitive_iban", (40,), ()),
        ("sensitive_secret", (41,), ()),
        ("eval_leak", (4,), (1,)),
        ("eval_near_leak", (5,), (2,)),
    }
    shown = run_fto("data", "check", str(train), "--eval", str(eval_file))
    assert f"{train}:1, 31, 32: 3 identical examples [duplicate]" in shown.stdout
    assert f"(eval {eval_file}:1)" in shown.stdout


@pytest.mark.timeout(60)
def test_classes_imbalance_repeated_answers_and_odd_forms(tmp_path):
    labels = [_row(f"Review {i}: it was {'great' if i % 2 else 'fine'} overall", "positive") for i in range(60)]
    labels += [_row(f"Review {i}: awful", "negative") for i in range(60, 63)]
    report = check_file(str(_write(tmp_path / "labels.jsonl", labels)))
    [imbalance] = [i for i in report.issues if i.code == "label_imbalance"]
    assert imbalance.lines == [61, 62, 63] and "'positive': 60" in imbalance.message
    answers = [_row(f"Tell me about item {i} in the catalogue", json.dumps({"id": i, "ok": True})) for i in range(40)]
    answers += [_row("Tell me about the broken item", "{'id': 41, ok}")]
    answers += [_row(f"Question number {i} about anything at all", "I cannot help with that request today.")
                for i in range(8)]  # fmt: skip
    report = check_file(str(_write(tmp_path / "json.jsonl", answers)))
    codes = {i.code: i.lines for i in report.issues}
    assert codes["answer_form"][0] == 41
    assert codes["repeated_answer"] == list(range(42, 50))


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("file", "pinned"),
    [
        # GSM8K's 200 test rows and the cookbook's toy file: only fewer examples than the guideline
        ("gsm8k/test.jsonl", {"too_little_data": [()]}),
        ("openai-cookbook/toy_chat_fine_tuning.jsonl", {"too_little_data": [()]}),
        ("llama-factory/alpaca_en_demo.json", {"too_little_data": [()]}),
        # drone commands: several ask for the same tool call in nearly the same words
        (
            "openai-cookbook/drone_training.jsonl",
            {"too_little_data": [()], "near_duplicate": [(11, 15), (21, 25), (3, 39)]},
        ),
        # identity.json asks "who are you?"-style questions twice with different answers
        ("llama-factory/identity.json", {"too_little_data": [()], "conflict": [(82, 87), (102, 307)]}),
        # KTO demo: an international number (+49…) in a reply
        ("llama-factory/kto_en_demo.json", {"too_little_data": [()], "sensitive_phone": [(1396,)]}),
        # tool-call demo: a conversation repeated, a question answered three ways, a stock sign-off, and e-mail
        # addresses a check cannot tell from real ones (yourname@yourdomain.com, boss@company.com)
        (
            "llama-factory/glaive_toolcall_en_demo.json",
            {
                "too_little_data": [()],
                "duplicate": [(174, 216)],
                "conflict": [(720, 1224, 1889)],
                "repeated_answer": [(812, 857, 902, 1010, 1543)],
                "sensitive_email": [(174, 216, 981, 1860)],
            },
        ),
    ],
)
def test_the_real_fixture_files_check_clean_or_with_pinned_findings(file, pinned):
    report = check_file(str(SHARED_DATA / file))
    found: dict[str, list[tuple[int, ...]]] = {}
    for issue in report.issues:
        found.setdefault(issue.code, []).append(tuple(issue.lines))
    assert found == pinned, [str(i) for i in report.issues]


@pytest.mark.timeout(60)
def test_an_unknown_code_in_check_strict_names_its_line(tmp_path):
    from fto.schemas.job_spec import CHECK_CODES

    train, _ = _crafted(tmp_path)
    report = check_file(str(train))
    assert {issue.code for issue in report.issues} <= CHECK_CODES  # every code the check emits can be made strict
    job = tmp_path / "job.yaml"
    job.write_text(f"name: x\ndata: {{train: {train}}}\ncheck: {{strict: [duplicat]}}\n"
                   "backends: {local: {model: embedded:tiny-llama}}\n")  # fmt: skip
    result = run_fto("submit", str(job))
    assert result.returncode == 2 and "job.yaml:3: check.strict" in result.stderr
    assert "unknown finding code 'duplicat'" in result.stderr and "Traceback" not in result.stderr
