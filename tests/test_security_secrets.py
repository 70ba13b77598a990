"""Every natsctl command, run with a known password or token configured: the secret never shows up.

The command list comes from ``natsctl --help`` (and each group's help), so a command added later is
swept too; commands not listed in SAMPLE_ARGS run with no arguments (their usage error is checked).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests import security_helpers as h
from tests.servers import NatsServer, free_port

# Arguments that make a command do real work (so its normal output, not only its usage error, is seen).
SAMPLE_ARGS: dict[tuple[str, ...], list[str]] = {
    ("pub",): ["orders", "event-1"],
    ("sub",): ["orders", "--all", "--count", "1", "--json"],
    ("replay",): ["orders", "--json"],
    ("channel",): ["orders"],
    ("verify",): ["orders"],
    ("server", "run"): ["--port", "{free}", "--monitor-port", "{free}", "--store-dir", "{tmp}/store"],
    ("context", "show"): [],
    ("context", "use"): ["sweep"],
    ("context", "add"): ["sweep-copy", "--server", "{url}", "--password", "{secret}"],
    ("context", "rm"): ["sweep-copy"],
    ("config", "show"): ["-o", "yaml"],
}
# Long-running commands are stopped (SIGINT, as a user would) after this many seconds.
RUN_FOR = 5.0


def command_list(cli, *group: str) -> list[tuple[str, ...]]:
    """Every leaf command under ``group``, from the help text."""
    text = cli.run(*group, "--help").stdout.decode()
    if "Commands:" not in text:
        return [tuple(group)]
    names = re.findall(r"^  (\S+)\s", text.split("Commands:", 1)[1], flags=re.M)
    found: list[tuple[str, ...]] = []
    for name in names:
        found += command_list(cli, *group, name)
    return found


def run(cli, argv: list[str], tmp_path: Path) -> tuple[int | None, bytes, bytes]:
    # Files, not pipes, and a process group: a child (nats-server under `server run`) that outlives
    # natsctl must neither keep the test waiting for EOF nor be left running.
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = cli.popen(*argv, stdout=out, stderr=err, start_new_session=True)
        try:
            proc.wait(timeout=RUN_FOR)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    return proc.returncode, out_path.read_bytes(), err_path.read_bytes()


def configure(home: Path, url: str, monitor: str, context: dict) -> None:
    folder = home / ".config" / "nats" / "context"
    folder.mkdir(parents=True, exist_ok=True)
    h.write(folder / "sweep.json", json.dumps({"url": url, **context, "description": "secret sweep"}))
    h.write(home / ".config" / "nats" / "context.txt", "sweep")
    h.write(home / ".config" / "natsctl" / "config.yaml", f"monitor: {monitor}\n")


def sweep(cli, tmp_path: Path, url: str, secret: str, env: dict[str, str]) -> list[str]:
    from concurrent.futures import ThreadPoolExecutor

    cli.env.update(env)
    fill = {
        "{free}": lambda: str(free_port()),
        "{tmp}": lambda: str(tmp_path),
        "{url}": lambda: url,
        "{secret}": lambda: secret,
    }
    runs = []
    for index, command in enumerate(command_list(cli)):
        args = []
        for arg in SAMPLE_ARGS.get(command, []):
            for key, make in fill.items():
                if key in arg:
                    arg = arg.replace(key, make())
            args.append(arg)
        own = tmp_path / f"run-{index}"  # each run's own stdout/stderr files
        own.mkdir()
        runs.append((command, [*command, *args], own))
    # Several at once: a long-running command is stopped after RUN_FOR seconds, and one after another
    # those waits add up to most of the sweep.
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda r: run(cli, r[1], r[2]), runs))
    leaks, ran = [], []
    for (command, _argv, _own), (code, out, err) in zip(runs, results, strict=True):
        ran.append(f"{' '.join(command)} -> {code}")
        for stream, data in (("stdout", out), ("stderr", err)):
            if secret.encode() in data:
                leaks.append(f"{' '.join(command)}: secret in {stream}")
            if b"Traceback" in data:
                leaks.append(f"{' '.join(command)}: traceback in {stream}")
    assert len(ran) >= 12, ran  # the sweep really found the commands
    print("\n".join(ran))
    return leaks


@pytest.mark.timeout(300)
def test_no_command_prints_the_password(cli, isolated_home, tmp_path):
    srv = NatsServer(config=h.users_block(h.password_user("admin", h.PASSWORD))).start()
    try:
        url = f"nats://admin:{h.PASSWORD}@127.0.0.1:{srv.port}"
        monitor = srv.monitor_url.replace("://", f"://mon:{h.PASSWORD}@", 1)  # a password in the monitor URL too
        configure(isolated_home, url, monitor, {"user": "admin", "password": h.PASSWORD})
        env = {"NATS_PASSWORD": h.PASSWORD, "NATS_USER": "admin"}
        assert sweep(cli, tmp_path, url, h.PASSWORD, env) == []
    finally:
        srv.cleanup()


@pytest.mark.timeout(300)
def test_no_command_prints_the_token(cli, isolated_home, tmp_path):
    srv = NatsServer(config=h.token_block(h.TOKEN)).start()
    try:
        url = f"nats://{h.TOKEN}@127.0.0.1:{srv.port}"
        configure(isolated_home, url, srv.monitor_url, {"token": h.TOKEN})
        assert sweep(cli, tmp_path, url, h.TOKEN, {"NATS_TOKEN": h.TOKEN}) == []
    finally:
        srv.cleanup()


def test_wrong_secret_in_errors_is_never_echoed(cli, isolated_home):
    """Failure paths too: a rejected password or token is not repeated in the error."""
    srv = NatsServer(config=h.users_block(h.password_user("admin", h.PASSWORD))).start()
    try:
        for args in (
            ["--user", "admin", "--password", "pw-Wrong9Xy"],
            ["--token", "pw-Wrong9Xy"],
            ["-s", f"nats://admin:pw-Wrong9Xy@127.0.0.1:{srv.port}"],
            ["-s", f"nats://pw-Wrong9Xy@127.0.0.1:{srv.port}"],
        ):
            result = (
                cli.run("pub", "orders", "x", "-s", srv.url, *args)
                if args[0] != "-s"
                else cli.run("pub", "orders", "x", *args)
            )
            assert result.returncode == 4, result.stderr
            assert b"pw-Wrong9Xy" not in result.stdout + result.stderr
    finally:
        srv.cleanup()
