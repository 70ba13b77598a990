"""Event contracts: the channel catalog, JSON Schema validation, schema inference, the per-key order audit.

No Typer, rich or NATS here: the CLI (``natsctl/cli/catalog.py``, ``cli/audit.py``, ``cli/contract_io.py``)
reads the bus and hands these modules plain values. The validator (jsonschema-rs), orjson and genson
are imported only when a catalog entry applies, so start-up and a channel without a contract pay nothing.
"""
