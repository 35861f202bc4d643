"""Is routeq's simulator what answers at a URL, and which one?

Anything can listen on a port: another program, another user's server, or the simulator of
another routeq run that stops when that run ends. A :class:`~routeq.sim.SimServer` therefore
serves who it is at ``IDENTITY_PATH``: a fixed marker, the random token of that server and the
models it has. :func:`identify` reads it, so a caller can trust a listener only when it is
routeq's simulator (with the models it needs), or only when it is the very server it started.
Standard library only, like the server.
"""

from __future__ import annotations

import http.client
import json
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

IDENTITY_PATH = "/v1/routeq-sim"
SERVICE = "routeq-sim"


@dataclass(frozen=True)
class SimIdentity:
    """What a simulator says about itself."""

    token: str
    models: frozenset[str]


def identify(base_url: str, timeout_s: float = 1.0) -> SimIdentity | None:
    """The identity of the routeq simulator at ``base_url`` (an OpenAI base URL such as
    ``http://127.0.0.1:8765/v1``), or None when nothing answers there or what answers is not
    one: refused or timed-out connections, other HTTP services, malformed replies."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    url = f"{parts.scheme}://{parts.netloc}{IDENTITY_PATH}"
    # No proxy from the environment: the question is what listens at this address.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            body = response.read(64 * 1024)
    except (OSError, ValueError, http.client.HTTPException):  # URLError is an OSError
        return None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("service") != SERVICE:
        return None
    token, models = data.get("token"), data.get("models")
    if not isinstance(token, str) or not token or not isinstance(models, list):
        return None
    return SimIdentity(token, frozenset(str(model) for model in models))
