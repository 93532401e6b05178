"""Chat templates render as `apply_chat_template` does, checked against ollama's expected prompts, and the
loss mask covers the assistant turns (weight 1) and nothing else, whatever the template."""

import json

import pytest

pytest.importorskip("transformers")

from fto.backends.local.embedded import build_tokenizer
from fto.backends.local.tokenized import IGNORE, encode
from tests.conftest import SHARED_DATA

VECTORS = json.loads((SHARED_DATA / "ollama-chat-templates" / "chat_template_vectors.json").read_text())["vectors"]
TEMPLATES = [
    next(iter(json.loads(line).items()))
    for line in (SHARED_DATA / "ollama-chat-templates" / "templates.jsonl").read_text().splitlines()
]
# The templates that data/README.md section 4 says render exactly as ollama's expected strings.
MATCHING = {"chatml", "llama3-instruct", "zephyr", "openchat", "granite-instruct", "alfred", "phi-3"}


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(v["expected"] for v in VECTORS)


def _render(tokenizer, template, messages):
    tokenizer.chat_template = template
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, bos_token="", eos_token="</s>"
    )


@pytest.mark.parametrize("name", sorted(MATCHING))
def test_rendering_matches_ollamas_expected_prompts(tokenizer, name):
    cases = [v for v in VECTORS if v["template"] == name]
    assert len(cases) == 3
    exact = [
        template
        for n, template in TEMPLATES
        if n == name and all(_render(tokenizer, template, v["messages"]) == v["expected"] for v in cases)
    ]
    assert exact, f"no {name} variant renders ollama's three conversations exactly"


CHAT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello, how are you?"},
    {"role": "assistant", "content": "Skip this reply.", "weight": 0},
    {"role": "user", "content": "Show me templating."},
    {"role": "assistant", "content": "Here it is."},
]


@pytest.mark.parametrize(("index", "name"), [(i, n) for i, (n, _) in enumerate(TEMPLATES)])
def test_loss_mask_covers_exactly_the_trained_assistant_turn(tokenizer, index, name):
    tokenizer.chat_template = TEMPLATES[index][1]
    messages = CHAT if _accepts_system(tokenizer) else CHAT[1:]
    encoded = encode(tokenizer, {"messages": messages}, max_length=4096)
    assert all(label in (IGNORE, token) for token, label in zip(encoded.input_ids, encoded.labels, strict=True))
    trained = tokenizer.decode([t for t in encoded.labels if t != IGNORE])
    assert "Here it is." in trained
    for other in ("Skip this reply.", "Hello", "Show me", "helpful"):
        assert other not in trained
    # nothing but the reply and the template's own end-of-turn markup
    assert len(trained) - len("Here it is.") <= 24, trained


def _accepts_system(tokenizer) -> bool:
    try:
        tokenizer.apply_chat_template(CHAT[:2], tokenize=False)
    except Exception:  # some stock templates raise on a system turn
        return False
    return True


def test_an_example_with_no_trained_turn_has_an_empty_mask(tokenizer):
    tokenizer.chat_template = TEMPLATES[0][1]
    encoded = encode(tokenizer, {"messages": CHAT[1:3]}, max_length=4096)
    assert encoded.trained_tokens == 0
