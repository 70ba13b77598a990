"""Every command has help; completion scripts are fresh and work; the version; one-line usage errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import typer.main

from natsctl import __version__
from natsctl.cli import completion
from natsctl.cli.main import build_app

ROOT = Path(__file__).resolve().parent.parent
FILES = {"bash": "natsctl.bash", "zsh": "_natsctl", "fish": "natsctl.fish"}


def all_commands():
    def walk(command, path):
        yield path, command
        for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(build_app()), []))


@pytest.mark.parametrize("path", [p for p, _ in all_commands()], ids=lambda p: " ".join(p) or "natsctl")
def test_every_command_has_help(cli_in_process, path):
    result = cli_in_process.run(*path, "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert text.startswith("Usage: natsctl")
    command = dict((tuple(p), c) for p, c in all_commands())[tuple(path)]
    assert (command.help or "").strip(), f"natsctl {' '.join(path)} has no help text"
    for param in command.params:
        if getattr(param, "param_type_name", "") == "option" and not getattr(param, "hidden", False):
            assert (param.help or "").strip(), f"option {param.opts} of {' '.join(path)} has no help"


def test_version(cli_in_process):
    result = cli_in_process.run("--version")
    assert result.stdout == f"natsctl {__version__}\n".encode() and result.returncode == 0


def test_unknown_command_is_one_line(cli_in_process):
    result = cli_in_process.run("publish")
    assert result.returncode == 2
    assert result.stderr.decode().startswith("natsctl: error: No such command 'publish'.")
    assert len(result.stderr.decode().splitlines()) == 1


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_committed_completion_scripts_are_fresh(shell):
    committed = (ROOT / "completions" / FILES[shell]).read_text()
    assert committed == completion.generate(shell), (
        f"completions/{FILES[shell]} is stale: run python -m natsctl.cli.completion completions"
    )


def test_completion_command_prints_the_script(cli_in_process):
    result = cli_in_process.run("completion", "bash")
    assert result.returncode == 0
    assert result.stdout.decode() == (ROOT / "completions" / FILES["bash"]).read_text()
    bad = cli_in_process.run("completion", "tcsh")
    assert bad.returncode == 2
    assert bad.stderr == b"natsctl: error: unknown shell 'tcsh'; choose bash, zsh or fish\n"


def bash_complete(*words: str) -> list[str]:
    script = (
        f"source {ROOT / 'completions' / FILES['bash']}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        "_natsctl; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def test_bash_completion_without_python():
    assert bash_complete("natsctl", "p") == ["pub"]
    assert bash_complete("natsctl", "pub", "--fi") == ["--file"]
    assert bash_complete("natsctl", "server", "r") == ["run"]
    assert bash_complete("natsctl", "--server", "x", "sub", "--stor") == ["--storage"]
    assert bash_complete("natsctl", "sub", "--storage", "") == ["file", "memory"]
    assert "--durable" in bash_complete("natsctl", "sub", "ch", "--all", "--d")


def test_bash_completes_context_names(tmp_path):
    folder = tmp_path / "nats" / "context"
    folder.mkdir(parents=True)
    (folder / "staging.json").write_text("{}")
    (folder / "prod.json").write_text("{}")
    script = (
        f"export XDG_CONFIG_HOME={tmp_path}; source {ROOT / 'completions' / FILES['bash']}\n"
        "COMP_WORDS=(natsctl pub --context ''); COMP_CWORD=3; _natsctl; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert sorted(out.split()) == ["prod", "staging"]


def test_fish_completion():
    fish = shutil.which("fish")
    assert fish, "fish is installed by .ci/run (apt-get install fish)"
    script = (
        f"source {ROOT / 'completions' / FILES['fish']}; complete -C 'natsctl pub --fi'; complete -C 'natsctl server r'"
    )
    out = subprocess.run([fish, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "--file\tRead messages from a file, one per line",
        "run\tRun a local nats-server with JetStream and monitoring on, in the foreground; Ctrl-C stops it.",
    ]


def test_zsh_completion_parses():
    zsh = shutil.which("zsh")
    assert zsh, "zsh is installed by .ci/run (apt-get install zsh)"
    subprocess.run([zsh, "-n", str(ROOT / "completions" / FILES["zsh"])], check=True)
    text = (ROOT / "completions" / FILES["zsh"]).read_text()
    assert "'pub:Publish to CHANNEL, every message confirmed by the server.'" in text


def test_readme_exit_codes_match_the_code():
    import re

    from natsctl.core.errors import ExitCode

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", section, flags=re.M)}
    assert documented == {int(code) for code in ExitCode}


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] in readme, "the last line of .ci/run must be the test command the README shows"
    assert "natsctl demo" in readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]


def test_demo_runs_end_to_end(cli):
    result = cli.run("demo", timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "published 6 ticket:created events (sequences 1-6)" in out
    members = [line for line in out.splitlines() if line.startswith("orders-service member-")]
    seqs = sorted(int(s) for line in members for s in line.split("[", 1)[1].rstrip("]").split(", ") if s)
    assert len(members) == 2 and seqs == [1, 2, 3, 4, 5, 6]
    assert "replayed ticket:created from the start: 6 messages" in out
    for title in ("Channels", "Subscriptions", "Clients"):
        assert f"\n{title}\n" in out
    assert "nats-server stopped" in out


def test_demo_json(cli):
    import json

    result = cli.run("demo", "--json", "--events", "4", timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["published"]["count"] == 4
    shares = report["queue_group"]["members"]
    assert sorted(shares["member-1"] + shares["member-2"]) == [1, 2, 3, 4]
    assert [m["seq"] for m in report["replay"]] == [1, 2, 3, 4]
    assert [c["name"] for c in report["tables"]["channels"]] == ["ticket_created_2ba475"]


def test_demo_on_an_external_nats_streaming_server(cli, stan_server):
    result = cli.run("demo", "--external", *stan_server.cli_args(), "--monitor", "http://127.0.0.1:1", timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "published 6 ticket:created events" in out
    assert "replayed ticket:created from the start: 6 messages" in out
    members = [line for line in out.splitlines() if line.startswith("orders-service member-")]
    seqs = sorted(int(s) for line in members for s in line.split("[", 1)[1].rstrip("]").split(", ") if s)
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert result.stderr.decode().startswith("natsctl: warning: no monitoring tables: cannot reach the monitoring port")


def test_every_value_option_and_argument_names_its_value():
    """Help shows `--seq N`, `--since DURATION|TIME`, never Typer's bare `<str>` / `<int range>`."""
    import typer.main

    from natsctl.cli.main import build_app

    def walk(command, path):
        for param in command.params:
            is_value = "Argument" in type(param).__name__ or not getattr(param, "is_flag", True)
            if is_value and param.metavar is None and param.name != "help":
                yield f"{path} {param.opts[-1] if param.opts else param.name}"
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    assert list(walk(typer.main.get_command(build_app()), "natsctl")) == []
