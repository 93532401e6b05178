"""Regenerate animals.jsonl: a small classification task a tiny model learns in seconds on a CPU.

Each example names an animal inside a varied sentence; the answer is its class. Held-out examples use
new sentences, so the model must find the animal among the other words, not recall a whole line.
"""

import json
import random
from pathlib import Path

CLASSES = {
    "bird": "eagle sparrow parrot owl penguin robin pigeon crow swan flamingo heron falcon",
    "mammal": "dog cat horse whale bat lion tiger rabbit elephant dolphin mouse bear",
    "fish": "salmon trout shark tuna cod goldfish carp herring sardine pike eel catfish",
    "reptile": "snake lizard turtle crocodile gecko iguana tortoise alligator cobra python chameleon viper",
    "insect": "ant bee beetle butterfly moth wasp mosquito grasshopper cricket ladybug dragonfly termite",
}
SENTENCES = [
    "I saw a {a} near the {p} this morning.",
    "My neighbour keeps a {a} in the {p}.",
    "There is a {a} by the {p}.",
    "A {a} was sleeping in the {p}.",
    "Look, a {a}!",
    "We found a small {a} under the {p}.",
    "The children drew a {a}.",
    "Have you ever seen a {a} at the {p}?",
    "The {a} moved slowly across the {p}.",
    "Someone photographed a {a} near the {p}.",
]
PLACES = ["river", "garden", "barn", "forest", "lake", "house", "field", "beach", "park", "road"]
SYSTEM = "Answer with the animal's class: bird, mammal, fish, reptile or insect."


def main() -> None:
    rng = random.Random(0)
    out = Path(__file__).with_name("animals.jsonl")
    with out.open("w") as f:
        for _ in range(400):
            kind = rng.choice(list(CLASSES))
            animal = rng.choice(CLASSES[kind].split())
            sentence = rng.choice(SENTENCES).format(a=animal, p=rng.choice(PLACES))
            messages = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"{sentence} What kind of animal is it?"},
                {"role": "assistant", "content": kind},
            ]
            f.write(json.dumps({"messages": messages}) + "\n")


if __name__ == "__main__":
    main()
