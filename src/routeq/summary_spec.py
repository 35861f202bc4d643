"""What a summary must look like, and the prompts that ask a model for one. Pure.

A summarization query carries a :class:`SummaryTask` (stored as JSON on the query row, never in
a Celery message): its role (a whole ``document``, one ``part`` of a split document, or a
``combine`` of partial summaries) and the :class:`SummarySpec` the user asked for. The worker
builds the model's prompt from it with :func:`summary_messages`, and the judge checks the answer
against the same spec, so what was asked and what is checked cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LANGUAGES: dict[str, str] = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
}
"""Languages a summary can be requested in: the ones the language check can recognise."""

SummaryFormat = Literal["paragraph", "bullets"]
SummaryRole = Literal["document", "part", "combine"]

_FORMAT_TEXT: dict[str, str] = {
    "paragraph": "one paragraph of plain prose (no lists, no headings)",
    "bullets": "a bulleted list, one point per line, each line starting with '- '",
}


class SummarySpec(BaseModel):
    """The summary the user asked for: length bounds in words, language and format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_words: int = Field(default=25, ge=1, le=5000)
    max_words: int = Field(default=120, ge=5, le=5000)
    language: str = Field(default="en", description="ISO 639-1 code, one of LANGUAGES")
    format: SummaryFormat = "paragraph"

    @model_validator(mode="after")
    def _consistent(self) -> SummarySpec:
        if self.min_words > self.max_words:
            raise ValueError(
                f"min_words ({self.min_words}) must not exceed max_words ({self.max_words})"
            )
        if self.language not in LANGUAGES:
            known = ", ".join(f"{code} ({name})" for code, name in LANGUAGES.items())
            raise ValueError(f"unsupported language {self.language!r}; supported: {known}")
        return self

    def key(self) -> str:
        """A stable fingerprint of the spec: the same text under another spec is another job."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class SummaryTask(BaseModel):
    """One summarization query's job: which piece of the document, under which spec."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["summarize"] = "summarize"
    role: SummaryRole = "document"
    part: int | None = Field(default=None, ge=1, description="1-based index of this piece")
    parts: int | None = Field(default=None, ge=1, description="pieces at this stage")
    stage: int = Field(default=0, ge=0, description="0: the document or its parts; n: combines")
    spec: SummarySpec = Field(default_factory=SummarySpec)


def cache_key(content_hash: str, spec: SummarySpec) -> str:
    """Key under which a finished summary is reused: same normalised text, same spec."""
    return f"summary:{content_hash}:{spec.key()}"


def instructions(task: SummaryTask) -> str:
    """The task's instructions for the model (the system message, after the tier's own)."""
    spec = task.spec
    wanted = (
        f"in {spec.min_words}-{spec.max_words} words, in {LANGUAGES[spec.language]} "
        f"({spec.language}), as {_FORMAT_TEXT[spec.format]}."
    )
    if task.role == "part":
        head = (
            f"The text below is part {task.part} of {task.parts} of a longer document. "
            f"Summarize this part {wanted}"
        )
    elif task.role == "combine":
        head = (
            "The texts below are summaries of consecutive parts of one document, in order. "
            f"Combine them into one summary of the whole document {wanted}"
        )
    else:
        head = f"Summarize the document below {wanted}"
    return (
        head + " Use only facts stated in the text: do not add numbers, names or claims it does "
        "not contain. Reply with the summary only."
    )


def summary_messages(
    task: SummaryTask, text: str, system_prompt: str | None = None
) -> list[dict[str, str]]:
    """Chat messages asking for the summary of ``text``; the tier's system prompt comes first."""
    system = "\n\n".join(part for part in (system_prompt, instructions(task)) if part)
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def combine_text(partials: list[str]) -> str:
    """The input of a combine step: the partial summaries in order, each labelled."""
    return "\n\n".join(
        f"Part {index} summary:\n{partial.strip()}" for index, partial in enumerate(partials, 1)
    )
