"""The grounding check: a summary must be about its source."""

from __future__ import annotations

from routeq.judges.grounding import grounding, grounding_failure
from routeq.judges.summary import summary_failure
from routeq.summary_spec import SummarySpec

PACKAGE = (
    "httpx is a fully featured HTTP client for Python 3, which provides sync and async APIs, "
    "and support for both HTTP/1.1 and HTTP/2. It offers a requests-compatible API, strict "
    "timeouts everywhere, connection pooling, and type annotations throughout. Transports "
    "can be swapped to call WSGI or ASGI applications directly."
)


def test_the_small_models_boilerplate_reply_is_not_a_summary_of_its_source() -> None:
    # The reply a real 135M model gave when asked to summarise a package description
    reply = (
        "Your answer has been accepted. You can use it to enhance your own work and share it "
        "with others who might find it helpful."
    )
    reason = grounding_failure(PACKAGE, reply)
    assert reason is not None and "not about its source" in reason
    # and the whole summary check fails it, though its format and length are fine
    failure = summary_failure(SummarySpec(min_words=5, max_words=60), PACKAGE, reply)
    assert failure is not None and "not about its source" in failure


def test_a_summary_in_its_sources_words_passes_and_stems_match() -> None:
    summary = (
        "httpx is an HTTP client for Python with sync and async APIs, HTTP/2 support, "
        "timeouts, pooled connections and swappable transports."
    )
    measured = grounding(PACKAGE, summary)
    assert measured.share > 0.8  # "pooled"/"pooling", "connections"/"connection" match
    assert grounding_failure(PACKAGE, summary) is None


def test_too_few_content_words_and_translations_are_not_judged() -> None:
    assert grounding_failure(PACKAGE, "Good stuff.") is None
    german = (
        "httpx ist ein vollständiger HTTP-Client für Python mit synchronen und asynchronen "
        "Schnittstellen, Zeitlimits und Verbindungspools, der auch HTTP/2 unterstützt."
    )
    assert grounding_failure(PACKAGE, german) is not None  # words alone: no overlap
    spec = SummarySpec(min_words=5, max_words=60, language="de")
    assert summary_failure(spec, PACKAGE, german) is None  # a translation is not checked
