"""Whether a NATS Streaming channel exists, asked of the server's monitoring port.

The protocol cannot tell without changing the answer: subscribing to a channel creates it, and so does
publishing. ``replay`` must not create what it reads, so before it subscribes it asks
``/streaming/channelsz?channel=NAME``, which answers 404 for a missing channel. The port is first
confirmed to be this cluster's (``/streaming/serverz`` names its ``cluster_id``): a plain nats-server,
or another cluster's monitoring port, would answer 404 for every channel.

Two small GETs with the standard library, run in a thread (the backends do not use the monitoring
layer), each bounded by :data:`LOOKUP_TIMEOUT` so an unreachable port costs little.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote

from natsctl.core.settings import Settings, redact_url

LOOKUP_TIMEOUT = 2.0  # seconds per request, at most (and at most --timeout)


@dataclass(frozen=True, slots=True)
class Lookup:
    exists: bool | None  # None: no monitoring port of this cluster answered
    where: str  # the monitoring URL that answered, or the ones asked (redacted)
    reason: str = ""  # why it could not tell


def channel_exists(settings: Settings, channel: str) -> Lookup:
    """Ask each monitoring URL of ``settings`` in turn; blocking (run it in a thread)."""
    timeout = max(0.1, min(settings.timeout, LOOKUP_TIMEOUT))
    opener = _opener(settings)
    reasons: list[str] = []
    urls = [url.rstrip("/") for url in settings.derived_monitor_urls()]
    for base in urls:
        shown = redact_url(base)
        status, body, problem = _get(opener, f"{base}/streaming/serverz", timeout)
        if problem:
            reasons.append(f"{shown}: {problem}")
            continue
        if status != 200 or _cluster_id(body) != settings.cluster_id:
            reasons.append(f"{shown} is not the monitoring port of cluster {settings.cluster_id!r}")
            continue
        status, _, problem = _get(opener, f"{base}/streaming/channelsz?channel={quote(channel, safe='')}", timeout)
        if problem:
            reasons.append(f"{shown}: {problem}")
        elif status == 200:
            return Lookup(True, shown)
        elif status == 404:
            return Lookup(False, shown)
        else:
            reasons.append(f"{shown}/streaming/channelsz answered HTTP {status}")
    return Lookup(None, ", ".join(redact_url(u) for u in urls), "; ".join(reasons))


def _opener(settings: Settings) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]  # as the monitoring client
    try:
        context = ssl.create_default_context(cafile=settings.monitor_ca or None)
    except (OSError, ssl.SSLError):
        context = ssl.create_default_context()  # an https port then fails verification: reported, not raised
    if settings.tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def _get(opener: urllib.request.OpenerDirector, url: str, timeout: float) -> tuple[int, bytes, str]:
    """(status, body, problem); a problem (unreachable, not HTTP, too slow) leaves status 0."""
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read(1 << 20), ""
    except urllib.error.HTTPError as exc:
        return exc.code, b"", ""
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = (reason.strerror or str(reason)) if isinstance(reason, OSError) else str(reason)
        return 0, b"", text.lower()
    except TimeoutError:
        return 0, b"", f"no answer within {timeout:g}s"
    except Exception as exc:  # noqa: BLE001 - not an HTTP server there (e.g. a NATS client port)
        return 0, b"", f"not an HTTP answer ({type(exc).__name__})"


def _cluster_id(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return data.get("cluster_id") if isinstance(data, dict) else None
