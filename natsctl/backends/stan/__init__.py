"""NATS Streaming (STAN): the protocol client over nats-py and the natsctl backend on top of it.

The opener calls :func:`connect` when ``settings.cluster_id`` is set. Nothing heavy is imported here
so that importing the package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from natsctl.core.settings import Settings

    from .backend import StanBackend


async def connect(settings: Settings) -> StanBackend:
    """Connect to the NATS Streaming server named by ``settings.cluster_id`` (raises NatsctlError)."""
    from .backend import StanBackend

    return await StanBackend.open(settings)
