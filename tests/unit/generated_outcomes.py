"""A small generated outcome dataset for the trained-router tests: easy prompts both models
get right, hard ones only the strong model does (mostly)."""

from __future__ import annotations

import random

from routeq.evaluation.outcomes import Example, Outcome

EASY = [
    "What is {a} plus {b}?",
    "Say hello to {name}.",
    "What colour is the sky on a clear day, {name}?",
    "Add {a} and {b}.",
]
HARD = [
    "Prove that the integral of x^{a} from 0 to {b} converges, and compute its exact value.",
    "A train leaves at {a}:00 going {b} km/h; another leaves {a} hours later at twice the speed."
    " When and where does the second overtake the first, if the track has {b} stations?",
    "Derive the closed form of the recurrence f(n) = {a} f(n-1) - {b} f(n-2) with f(0)=1.",
]
NAMES = ["Ada", "Bo", "Cy", "Di", "Ed"]


def generated(n: int = 160, seed: int = 7) -> list[Example]:
    """Easy prompts: both models right (the weak one 90% of the time). Hard ones: the strong
    model right 85%, the weak one 15%. What a router should learn: hard ones go up."""
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        hard = i % 2 == 1
        template = rng.choice(HARD if hard else EASY)
        prompt = template.format(a=rng.randint(2, 99), b=rng.randint(2, 99), name=rng.choice(NAMES))
        weak = rng.random() < (0.15 if hard else 0.9)
        strong = rng.random() < (0.85 if hard else 0.95)
        examples.append(
            Example(
                id=f"g-{i}",
                prompt=prompt,
                outcomes={"weak": Outcome(float(weak)), "strong": Outcome(float(strong))},
                extra={"hard": hard},
            )
        )
    return examples
