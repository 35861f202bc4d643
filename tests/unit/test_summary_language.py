"""The summary language check reads prose, not links and code.

Function words decide the language, and a URL is full of them in disguise: ``com`` (Portuguese
"with") in every ``github.com``, ``e`` (Portuguese and Italian "and") in ``pip install -e .``,
``en`` in ``/en/latest/``. So an English summary of a package description, which lists its
links, was failed as "written in Portuguese" and escalated for nothing.
"""

from __future__ import annotations

import pytest

from routeq.judges.summary import detect_language, summary_failure
from routeq.summary_spec import SummarySpec

LINKS_SUMMARY = (
    "acme-python is the Python client for the Acme API. Code: "
    "https://github.com/acme/acme-python, https://gitlab.com/acme/acme-python. Docs: "
    "https://acme.com/docs, https://acme-python.readthedocs.io/en/latest/. Chat: "
    "https://discord.com/invite/acme. Funding: https://opencollective.com/acme. Status: "
    "https://status.acme.com. Install: `pip install -e .`"
)

TERSE_BULLETS = (
    "- Official Python client for the Acme API.\n"
    "- Code: https://github.com/acme/acme-python\n"
    "- Docs: https://acme-python.readthedocs.io/en/latest/\n"
    "- Homepage: https://acme.com/python\n"
    "- Chat: https://discord.com/invite/acme\n"
    "- Funding: https://opencollective.com/acme\n"
    "- Install: `pip install -e .`"
)

CODE_SUMMARY = """\
The SDK is published as com.acme:acme-sdk and configured in ~/.config/acme/config.toml or \
C:\\Users\\me\\acme.ini; it reads ACME_TOKEN, calls com.acme.sdk.Client.create(e, o) and \
is tested with `mvn -e -o verify` from src/main/java/com/acme/sdk/. See docs.acme.com/java, \
e.g. the retry_policy and maxRetries options:

```java
Client o = com.acme.sdk.Client.create(e).withRetries(3);
o.da(e).do(o).com(e);
```
"""


@pytest.mark.parametrize("summary", [LINKS_SUMMARY, CODE_SUMMARY])
def test_english_full_of_links_and_code_is_english(summary: str) -> None:
    assert detect_language(summary) == "en"


@pytest.mark.parametrize("summary", [LINKS_SUMMARY, TERSE_BULLETS, CODE_SUMMARY])
def test_links_and_code_do_not_fail_the_language_check(summary: str) -> None:
    spec = SummarySpec(language="en", format="paragraph", min_words=1, max_words=500)
    reason = summary_failure(spec, summary, summary, condensing=False) or ""
    assert "language" not in reason, reason


def test_terse_bullets_of_links_are_too_little_prose_to_judge() -> None:
    assert detect_language(TERSE_BULLETS) is None


def test_real_portuguese_with_links_is_still_portuguese() -> None:
    summary = (
        "A empresa informou que a receita cresceu no terceiro trimestre, impulsionada por uma "
        "forte procura pelos seus serviços de nuvem (https://acme.com/cloud) e por uma "
        "recuperação das vendas, segundo o relatório em docs.acme.com/relatorio.pdf."
    )
    assert detect_language(summary) == "pt"
