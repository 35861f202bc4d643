"""Keep API keys and passwords out of the ledger, the terminal and the logs.

Keys live in environment variables and are sent in HTTP headers, so any text that comes back
from the HTTP stack can quote them: httpx's "Illegal header value b'Bearer sk-…\\n'" for a key
written with ``echo key > file``, a provider's ``Incorrect API key provided: sk-…``, a proxy that
echoes the request headers. Such text is stored in the ledger (``provider_requests.error``,
``hops.error``) and printed by ``routeq status`` and ``routeq check``. :func:`scrub` is the one
place that removes secrets from text; every path that turns foreign text into a message routeq
keeps or shows calls it.

Two kinds of redaction, both replaced by :data:`REDACTED`:

* **Known secrets**: the values of the configured ``api_key_env`` variables (and any value or
  variable registered here), in every form they are quoted in: as is, stripped, ``repr``/JSON
  escaped (``\\n`` as two characters) and percent-encoded.
* **Credential-shaped text** (``generic=True``): ``Authorization``/``x-api-key``/``api_key``
  header or parameter values, ``Bearer`` tokens, ``sk-…`` keys, h11's illegal header values,
  ``user:password@`` in URLs, ``?key=``/``?token=``/``?password=`` parameters. These catch a key
  routeq was never told about (a proxy's, or a rotated one).

The process-wide registry lets code deep in the stack scrub without holding ``Settings``:
loading a configuration registers the *names* of its key variables (their values are read from
the environment at scrub time, so a rotated key is still caught), and every provider adapter
registers its own. Scrubbing is cheap: the pattern of known secrets is compiled once per distinct
set of secrets and cached.

Wiring the worker's logs (do it once the logging is set up, e.g. in Celery's
``after_setup_logger`` and ``after_setup_task_logger`` signal handlers)::

    from routeq.secrets import install_log_filter, register_settings

    register_settings(settings)          # URL passwords too; key names are already registered
    install_log_filter(logger)           # the logger and each of its current handlers
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlsplit

if TYPE_CHECKING:
    from routeq.config import ModelEndpoint, Settings

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 4
"""Shorter values are never scrubbed as known secrets: replacing every "ab" would garble
ordinary text and hide nothing (such a "key" is a test value, not a credential)."""

# -- credential-shaped text ----------------------------------------------------------------------

_TOKEN = r"[^\s\"'`,;&)}\]<>]+"  # a header/parameter value up to the next delimiter
# Never redact a marker: ours (so scrub is idempotent) or the *** of check.safe_url's URLs.
_NOT_DONE = r"(?!\[REDACTED\]|\*\*\*)"
_GENERIC: tuple[tuple[re.Pattern[str], str], ...] = (
    # h11 (through httpx.LocalProtocolError) quotes the whole illegal header value as bytes.
    (
        re.compile(r"(Illegal header value )b?(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"),
        rf"\1{REDACTED}",
    ),
    # Header and parameter values: "Authorization: Bearer x", "'x-api-key': 'x'", "api_key=x".
    (
        re.compile(
            r"(?i)\b((?:proxy-)?authorization|x-api-key|x-goog-api-key|api[-_]?key)"
            r"([\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic|token)\s+)?+" + _NOT_DONE + _TOKEN
        ),
        rf"\1\2{REDACTED}",
    ),
    # OpenAI-style echo of a rejected key: "Incorrect API key provided: abc123".
    (re.compile(r"(?i)(api key provided:\s*)" + _NOT_DONE + _TOKEN), rf"\1{REDACTED}"),
    # A bearer token anywhere; one with a digit, so prose ("Bearer authentication") survives.
    (
        re.compile(r"\b(Bearer\s+)" + _NOT_DONE + r"(?=[\w.~+/-]*\d)[\w.~+/-]{8,}=*"),
        rf"\1{REDACTED}",
    ),
    # OpenAI / Anthropic / OpenRouter style keys: sk-…, sk-proj-…, sk-ant-api03-….
    (re.compile(r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{16,}"), REDACTED),
    # Credentials in URLs: scheme://user:password@host and ?key=…, ?token=…, ?password=….
    (re.compile(r"(://[^/\s:@]*:)" + _NOT_DONE + r"[^/\s@]+@"), rf"\1{REDACTED}@"),
    (
        re.compile(
            r"(?i)([?&](?:api[-_]?key|key|access[-_]?token|token|password|secret)=)"
            + _NOT_DONE
            + r"[^&#\s\"']+"
        ),
        rf"\1{REDACTED}",
    ),
)


# -- known secrets -------------------------------------------------------------------------------


def _forms(secret: str) -> set[str]:
    """Every way ``secret`` is commonly quoted in an error message."""
    forms = {secret, secret.strip()}
    for form in list(forms):
        forms.add(json.dumps(form)[1:-1])  # JSON bodies: \n, \", \u00e9
        forms.add(repr(form)[1:-1])  # Python reprs of str
        forms.add(repr(form.encode("utf-8", "backslashreplace"))[2:-1])  # reprs of bytes
        forms.add(quote(form, safe=""))  # URLs and form bodies
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


@functools.lru_cache(maxsize=64)
def _known_pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    """One alternation of every form of every secret, longest first so a secret that contains
    another is removed whole. Cached: the set of secrets rarely changes within a process."""
    forms: set[str] = set()
    for secret in secrets:
        forms |= _forms(secret)
    if not forms:
        return None
    return re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))


class _Registry:
    """Secret values and the names of variables that hold them, shared by the whole process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._names: frozenset[str] = frozenset()

    def add_values(self, values: Iterable[str | None]) -> None:
        new = {value for value in values if value and len(value.strip()) >= MIN_SECRET_LENGTH}
        if not new <= self._values:
            with self._lock:
                self._values = self._values | new

    def add_names(self, names: Iterable[str | None]) -> None:
        new = {name for name in names if name}
        if not new <= self._names:
            with self._lock:
                self._names = self._names | new

    def secrets(self) -> set[str]:
        """The registered values plus the current values of the registered variables."""
        found = set(self._values)
        for name in self._names:
            value = os.environ.get(name)
            if value and len(value.strip()) >= MIN_SECRET_LENGTH:
                found.add(value)
        return found

    def clear(self) -> None:
        with self._lock:
            self._values = frozenset()
            self._names = frozenset()


_REGISTRY = _Registry()


def clear_registry() -> None:
    """Forget every registered secret and variable (for tests)."""
    _REGISTRY.clear()


def register_secrets(values: Iterable[str | None]) -> None:
    """Scrub these values from every text :func:`scrub` sees from now on, in this process.
    ``None``, empty and too-short values are ignored, so callers can pass optional settings."""
    _REGISTRY.add_values(values)


def register_secret_env(names: Iterable[str | None]) -> None:
    """Scrub the values of these environment variables, read at scrub time (a key rotated in the
    environment is still caught, and no value is kept here)."""
    _REGISTRY.add_names(names)


def register_settings(settings: Settings) -> None:
    """Register every secret a configuration refers to: its API key variables and the passwords
    in its database and broker URLs."""
    register_secret_env(_key_env_names(settings))
    register_secrets([*url_passwords(settings.database_url), *url_passwords(settings.broker_url)])


def registered_secrets() -> list[str]:
    """The secrets the registry knows now (values, and the values of registered variables)."""
    return sorted(_REGISTRY.secrets())


def configured_secrets(settings: Settings) -> list[str]:
    """The values of every ``api_key_env`` of the tiers and the judge model that is set in the
    environment now (in ladder order, without repeats)."""
    found: list[str] = []
    for name in _key_env_names(settings):
        value = os.environ.get(name)
        if value and value not in found:
            found.append(value)
    return found


def _key_env_names(settings: Settings) -> list[str]:
    return [endpoint.api_key_env for endpoint in key_endpoints(settings) if endpoint.api_key_env]


def key_endpoints(settings: Settings) -> list[ModelEndpoint]:
    """Every endpoint that may hold a key: each tier and its fallbacks, then the judge model
    (even when judging is disabled: it is configured, so its key may be in the environment)."""
    return settings.endpoints


def url_passwords(url: str | None) -> list[str]:
    """The passwords a URL carries: in its authority (decoded) and in a ``password=`` parameter."""
    if url is None:
        return []
    try:
        parts = urlsplit(url)
        found = [unquote(parts.password)] if parts.password else []
    except ValueError:
        return []
    return found + [value for key, value in parse_qsl(parts.query) if key.lower() == "password"]


def scrub(text: str, secrets: Iterable[str | None] = (), *, generic: bool = True) -> str:
    """``text`` with every secret replaced by :data:`REDACTED`.

    The secrets are the registry's (see :func:`register_secrets`, :func:`register_secret_env`)
    plus ``secrets``. ``generic`` also redacts credential-shaped text that matches no known
    secret (header values, bearer tokens, ``sk-`` keys, URL credentials): use it for error
    texts; turn it off for a model's answer, where ``Authorization: Bearer <token>`` is more
    likely an example than a leak. Idempotent: scrubbing twice changes nothing more.
    """
    if not text:
        return text
    known = _REGISTRY.secrets()
    known.update(
        secret for secret in secrets if secret and len(secret.strip()) >= MIN_SECRET_LENGTH
    )
    pattern = _known_pattern(frozenset(known)) if known else None
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    if generic:
        for generic_pattern, replacement in _GENERIC:
            text = generic_pattern.sub(replacement, text)
    return text


# -- API key values --------------------------------------------------------------------------------


def api_key_problem(variable: str, value: str) -> str | None:
    """Why the value of ``variable`` cannot be sent as an API key, or None when it can.

    HTTP header values must be visible ASCII, and a key never has whitespace, so a trailing
    newline (``echo key > file``), a pasted space or a curly quote would only fail later, inside
    httpx, with an error that quotes the whole key. The message names the variable and the
    position of the offending character, never the value.
    """
    if not value:
        return None
    if value.endswith("\n"):
        return (
            f"{variable} ends with a newline; write it without one: printf '%s' \"$KEY\" > FILE "
            f"(echo adds the newline), or export {variable}=\"$(tr -d '\\r\\n' < FILE)\""
        )
    if value != value.lstrip():
        return f"{variable} starts with whitespace; remove it from the value"
    if value != value.rstrip():
        return f"{variable} ends with whitespace (a space, tab or carriage return); remove it"
    for position, char in enumerate(value, start=1):
        if "!" <= char <= "~":
            continue
        hint = ""
        if char in "\r\n":
            what = "a line break"
        elif char == " ":
            what = "a space"
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            what = f"a control character (U+{ord(char):04X})"
        else:
            what, hint = (
                "a non-ASCII character",
                " (a curly quote or an invisible space pasted in?)",
            )
        return (
            f"{variable} contains {what} at character {position}{hint}; an API key is only "
            "visible ASCII characters"
        )
    return None


# -- logging ---------------------------------------------------------------------------------------


class SecretFilter(logging.Filter):
    """Scrubs each record in place: the rendered message (its args folded in, so an argument
    cannot smuggle a key past the filter), the exception text and the stack text. Never drops a
    record."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as logging does
            return True
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            # Formatter.format uses exc_text when set, so the traceback is rendered scrubbed.
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def install_log_filter(
    target: logging.Logger | logging.Handler | Iterable[logging.Logger | logging.Handler],
) -> SecretFilter:
    """Attach one :class:`SecretFilter` to ``target`` and return it.

    A logger's filters only see records logged on that very logger, not those propagated from
    its children, so for a logger the filter goes on the logger *and* on each handler it has
    now (handlers added later need their own call). Installing twice adds nothing.
    """
    found = SecretFilter()
    targets: list[logging.Logger | logging.Handler] = []
    items = [target] if isinstance(target, logging.Logger | logging.Handler) else list(target)
    for item in items:
        targets.append(item)
        if isinstance(item, logging.Logger):
            targets.extend(item.handlers)
    for item in targets:
        existing = [f for f in item.filters if isinstance(f, SecretFilter)]
        if not existing:
            item.addFilter(found)
    return found


__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "SecretFilter",
    "api_key_problem",
    "clear_registry",
    "configured_secrets",
    "install_log_filter",
    "key_endpoints",
    "register_secret_env",
    "register_secrets",
    "register_settings",
    "registered_secrets",
    "scrub",
    "url_passwords",
]
