"""The transport layer: nats-py connections for both backends (connect, credentials, TLS, error
diagnosis) and the bulk paths (``fast.py``, the only module that touches nats-py internals).

Nothing is imported here: ``import natsctl.transport.connect`` (or another module) names what it needs.
Importing the package only arranges for nats-py's JetStream package to load when first used (below).
"""

from __future__ import annotations

import sys


def _defer_jetstream_package() -> None:
    """Let ``nats.js`` (nats-py's JetStream API, ~35 ms of start-up) load on first use, not with the client.

    nats-py's client module imports it up front but only uses it when a message carries headers or
    JetStream is asked for; a NATS Streaming command never does. The package goes into sys.modules
    unexecuted, with a module ``__getattr__`` (PEP 562) that executes it at the first attribute it
    lacks: ``from nats.js import api``, ``nats.js.JetStreamContext``, ``nats.js.api.Header`` all
    work as before. Anything unexpected leaves nats-py to import as usual.
    """
    if "nats" in sys.modules or "nats.js" in sys.modules:
        return  # too late, or done already
    try:
        from importlib.machinery import PathFinder
        from importlib.util import find_spec, module_from_spec

        package = find_spec("nats")  # found, not imported
        locations = package.submodule_search_locations if package else None
        spec = PathFinder.find_spec("nats.js", list(locations)) if locations else None
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return
        module = module_from_spec(spec)
    except Exception:  # noqa: BLE001 - an unusual installation: nats-py imports as it always does
        return
    loader = spec.loader

    def load(name: str):  # the module's __getattr__ until it is executed
        if module.__dict__.pop("__getattr__", None) is not None:
            loader.exec_module(module)
        return object.__getattribute__(module, name)

    module.__dict__["__getattr__"] = load
    sys.modules["nats.js"] = module
    try:
        import nats
    except BaseException:
        sys.modules.pop("nats.js", None)
        raise
    nats.js = module  # what ``import nats.js`` sets when it loads the package


_defer_jetstream_package()
