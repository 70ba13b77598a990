"""`natsctl migrate`: NATS Streaming -> JetStream, as steps the CLI drives (plan, copy, durables, verify).

This layer reads the NATS Streaming monitoring port (natsctl.monitor) and reaches both servers only
through the opener (``open_migration_source`` / ``open_migration_target``); it prints nothing.
"""
