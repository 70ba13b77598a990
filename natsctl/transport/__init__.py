"""The transport layer: nats-py connections for both backends (connect, credentials, TLS, error
diagnosis) and the bulk paths (``fast.py``, the only module that touches nats-py internals).

Nothing is imported here: ``import natsctl.transport.connect`` (or another module) names what it needs.
"""
