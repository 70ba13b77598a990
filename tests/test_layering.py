"""Layering (docs/ARCHITECTURE.md): each module imports only from its own layer or the layers below.

Every import counts, also the ones inside functions (natsctl imports lazily for start-up speed).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "natsctl"

CORE = ("natsctl.core",)
# natsctl/transport/: connecting, credentials, TLS, error diagnosis, the bulk paths.
TRANSPORT = ("natsctl.transport",)
# (modules of the layer, natsctl modules they may import, third-party packages they must not import)
LAYERS = {
    "package": (("natsctl.__init__", "natsctl.backends.__init__"), (), set()),  # the bare packages: nothing
    "core": (CORE, CORE, {"typer", "rich", "click", "nats", "httpx", "google"}),
    "transport": (TRANSPORT, CORE + TRANSPORT, {"typer", "rich", "click", "httpx"}),
    "jetstream": (
        ("natsctl.backends.jetstream",),
        (*CORE, *TRANSPORT, "natsctl.backends.jetstream"),
        {"typer", "rich", "click", "httpx"},
    ),
    "stan": (
        ("natsctl.backends.stan",),
        (*CORE, *TRANSPORT, "natsctl.backends.stan"),
        {"typer", "rich", "click", "httpx"},
    ),
    # natsctl/contracts/: the event catalog, schema validation, inference, the order audit (no CLI, no NATS).
    "contracts": (("natsctl.contracts",), (*CORE, "natsctl.contracts"), {"typer", "rich", "click", "nats", "httpx"}),
    "monitoring": (("natsctl.monitor",), (*CORE, "natsctl.monitor"), {"typer", "rich", "click", "nats"}),
    "opener": (("natsctl.opener",), (*CORE, *TRANSPORT, "natsctl.backends"), {"typer", "rich", "click"}),
    "embedded": (("natsctl.embedded",), CORE, {"typer", "rich", "click", "nats", "httpx"}),
    # natsctl migrate's steps: the monitoring port, and both servers through the opener.
    "migrate": (
        ("natsctl.migrate",),
        (*CORE, "natsctl.monitor", "natsctl.opener", "natsctl.migrate"),
        {"typer", "rich", "click", "nats", "httpx"},
    ),
    # The CLI uses everything below, but a backend (and its transport) only through the opener, never
    # a backend or transport module directly.
    "cli": (
        ("natsctl.cli", "natsctl.__main__"),
        (
            *CORE,
            "natsctl.monitor",
            "natsctl.contracts",
            "natsctl.opener",
            "natsctl.embedded",
            "natsctl.migrate",
            "natsctl.cli",
            "natsctl.__version__",
        ),
        set(),
    ),
}


def module_name(path: Path) -> str:
    """Dotted name; a package's own ``__init__`` keeps that suffix (its layer may differ from its modules')."""
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = (
                [f"{base}.{alias.name}" for alias in node.names] if base in {"natsctl", "natsctl.backends"} else [base]
            )
            found += [(node.lineno, name) for name in names]
    return found


def layer_of(module: str) -> str | None:
    for layer, (members, _, _) in LAYERS.items():
        if any(module == m or module.startswith(m + ".") for m in members):
            return layer
    return None


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    assert [m for m in map(module_name, MODULES) if layer_of(m) is None] == []


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_imports_stay_in_their_layer(path):
    module = module_name(path)
    _, allowed, forbidden = LAYERS[layer_of(module)]
    wrong = []
    for line, name in imports_of(path):
        if name.startswith("natsctl"):
            if not within(name, allowed):
                wrong.append(f"{line}: {name}")
        elif name.split(".")[0] in forbidden:
            wrong.append(f"{line}: {name}")
    assert wrong == [], f"{module} ({layer_of(module)}) imports across layers"


def test_the_check_sees_relative_and_lazy_imports(tmp_path):
    package = tmp_path / "natsctl" / "backends" / "stan"
    package.mkdir(parents=True)
    sample = package / "sample.py"
    sample.write_text("from . import proto\nfrom ..jetstream import X\ndef f():\n    import rich\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert imports_of(sample) == [(1, "natsctl.backends.stan"), (2, "natsctl.backends.jetstream"), (4, "rich")]
    finally:
        ROOT = saved
