"""natsctl: the command line for a NATS event bus (JetStream and NATS Streaming)."""

__version__ = "0.1.0"
