"""Start-up stays fast by construction: what a command run imports, checked without any timing.

``--version``, ``--help`` and a command's parsing must not import pydantic (Typer 0.29's value
conversion), rich, nats, httpx or protobuf; a command run imports what it uses (nats for pub) but never
pydantic. natsctl/cli/lazy.py relies on Typer's ``get_runtime_param`` / ``type_descriptor`` and on
``get_params``: the conversion tests fail if a Typer release changes them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import typer
import typer.core
import typer.main
import typer.models

from tests.servers import free_port

HEAVY = ("pydantic", "pydantic_core", "rich", "nats", "httpx", "google.protobuf", "yaml")

PROBE = textwrap.dedent(
    """
    import json, os, sys
    from natsctl.cli.main import main
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
    with open(os.environ["STARTUP_PROBE_OUT"], "w") as out:
        json.dump({"code": code, "modules": sorted(sys.modules)}, out)
    """
)


def probe(tmp_path, *args: str) -> tuple[int, set[str], str]:
    """Run natsctl with ``args`` in a fresh interpreter; (exit code, modules imported, stderr)."""
    out = tmp_path / "probe.json"
    env = {**os.environ, "STARTUP_PROBE_OUT": str(out), "NATS_URL": "", "NATS_CONTEXT": ""}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")  # no user context or config file
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    data = json.loads(out.read_text())
    return data["code"], set(data["modules"]), result.stderr


def heavy_in(modules: set[str], names=HEAVY) -> list[str]:
    return sorted(n for n in names if n in modules or any(m.startswith(n + ".") for m in modules))


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["--help"],
        [],
        ["pub", "--help"],
        ["sub", "--help"],
        ["replay", "--help"],
        ["context", "--help"],
        ["pub", "orders", "--count", "0"],  # a usage error after every value was converted
    ],
    ids=lambda a: " ".join(a) or "(no arguments)",
)
def test_no_heavy_import_before_a_command_runs(tmp_path, args):
    code, modules, _ = probe(tmp_path, *args)
    assert code in (0, 2, None)
    assert heavy_in(modules) == []


def test_version_imports_no_command_module(tmp_path):
    code, modules, _ = probe(tmp_path, "--version")
    assert code in (0, None)
    # The root group declares the connection flags (given before the command too): the shared option
    # declarations come along, no command module.
    root = ("natsctl.cli.main", "natsctl.cli.lazy", "natsctl.cli.options", "natsctl.cli.globalflags")
    assert not [m for m in modules if m.startswith("natsctl.cli.") and m not in root]
    assert "natsctl.backends" not in modules


def test_a_command_run_never_imports_pydantic(tmp_path):
    # Every option of pub is parsed and converted, then the connection is refused.
    code, modules, stderr = probe(
        tmp_path,
        "pub",
        "orders",
        "hello",
        "-s",
        f"nats://127.0.0.1:{free_port()}",
        "--timeout",
        "1",
        "--count",
        "2",
        "-H",
        "k:v",
        "--replicas",
        "1",
        "--json",
    )
    assert code not in (0, 2), stderr
    assert "nats" in modules  # the command really ran
    assert heavy_in(modules, ("pydantic", "pydantic_core", "rich", "httpx")) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["pub", "x", "--count", "0"],
            "Invalid value for '--count' / '-c': Input should be greater than or equal to 1",
        ),
        (["pub", "x", "--count", "abc"], "Input should be a valid integer, unable to parse string as an integer"),
        (["pub", "x", "--timeout", "soon"], "Input should be a valid number, unable to parse string as a number"),
        (["pub", "x", "--replicas", "9"], "Input should be less than or equal to 5"),
        (["sub", "x", "--max-in-flight", "1.5"], "Input should be a valid integer"),
    ],
)
def test_plain_values_are_checked_like_typer_does(tmp_path, args, message):
    code, modules, stderr = probe(tmp_path, *args)
    assert code == 2
    assert message in stderr
    assert heavy_in(modules) == []


def test_lazy_group_lists_what_the_whole_app_registers():
    from natsctl.cli.main import build_app, build_command

    whole = typer.main.get_command(build_app())
    lazy = build_command()
    assert lazy.list_commands(None) == whole.list_commands(None)


def test_values_of_every_command_are_converted_without_typer_adapters():
    """Guards the Typer internals lazy.py uses: every parameter of every command gets a plain converter."""
    from natsctl.cli.lazy import PlainConverter, plain_converter
    from natsctl.cli.main import build_command

    lazy = build_command()
    plain = 0
    for name in lazy.list_commands(None):
        for command in _walk(lazy.get_command(None, name)):
            for param in command.get_params(typer.Context(command, info_name=command.name)):
                if plain_converter(param.type_descriptor) is None:
                    continue  # a choice, path, parser...: Typer converts it (and imports pydantic)
                runtime = param.get_runtime_param()
                assert isinstance(runtime, PlainConverter), f"{command.name} {param.name}: {type(runtime).__name__}"
                plain += 1
    assert plain > 50


def _walk(command):
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _walk(sub)


def _lazy_building_fails(self, app, modules):
    raise AttributeError("'Typer' object has no attribute 'registered_commands'")


@pytest.mark.parametrize("moved", ["a name lazy.py looks up", "a class lazy.py imports", "lazy building raises"])
def test_a_typer_whose_internals_moved_gives_a_slower_start_never_a_broken_cli(cli_in_process, monkeypatch, moved):
    """What lazy.py relies on is probed when the root group is built; without it natsctl builds the whole
    app the plain way, and help, usage errors and --version come out as they do lazily."""
    import natsctl.cli
    from natsctl.cli import lazy
    from natsctl.cli.main import build_command

    runs = (["--help"], ["pub", "x", "--count", "0"], ["--version"], ["context", "add", "--help"], ["sub"])
    lazily = [cli_in_process.run(*args) for args in runs]
    assert isinstance(build_command(), lazy.LazyGroup)
    if moved == "a name lazy.py looks up":
        monkeypatch.delattr(typer.main, "get_command_name")
    elif moved == "a class lazy.py imports":
        monkeypatch.delattr(typer.models, "TyperInfo")
        monkeypatch.delitem(sys.modules, "natsctl.cli.lazy")  # imported again, it fails
        monkeypatch.delattr(natsctl.cli, "lazy")
    else:
        monkeypatch.setattr(lazy.LazyGroup, "load_from", _lazy_building_fails)
    assert type(build_command()) is typer.core.TyperGroup  # the whole app, built the plain way
    for args, before in zip(runs, lazily, strict=True):
        after = cli_in_process.run(*args)
        assert (after.returncode, after.stdout, after.stderr) == (before.returncode, before.stdout, before.stderr), args
    assert lazily[1].returncode == 2 and b"greater than or equal to 1" in lazily[1].stderr
