"""Open the backend the settings name. The only module that knows both backends exist."""

from __future__ import annotations

from natsctl.core.backend import Backend
from natsctl.core.settings import Settings
from natsctl.transport.connect import Notify, stderr_notify


async def open_backend(settings: Settings, *, notify: Notify = stderr_notify) -> Backend:
    """JetStream, or NATS Streaming when a cluster id is set (flag, env or context)."""
    if settings.cluster_id:
        from natsctl.backends import stan

        return await stan.connect(settings)
    from natsctl.backends import jetstream

    return await jetstream.connect(settings, notify=notify)


async def open_migration_source(settings: Settings):  # -> natsctl.core.migrate.Source
    """The NATS Streaming side of ``natsctl migrate`` (settings with a cluster id)."""
    from natsctl.backends.stan.migrate import open_source

    return await open_source(settings)


async def open_migration_target(settings: Settings):  # -> natsctl.core.migrate.Target
    """The JetStream side of ``natsctl migrate``."""
    from natsctl.backends.jetstream.migrate import open_target

    return await open_target(settings)
