"""Issue 10: inputs at their edges. Each must end in one ``natsctl: error:`` line with the documented exit
code (2 for bad usage or input) that names the flag, variable, file or key and says what to do; never
"unexpected ..." (exit 1), a server's own refusal, or a silent fallback.

- runtime dependencies: every module natsctl imports (lazily too) comes with its runtime install;
- durations and timeouts: non-finite, non-positive and absurd values (also in the config file);
- config and context files: too deeply nested, values of the wrong type, URL lists naming nothing;
- NATS_URL / --server naming no server;
- NATS Streaming wire limits (int32 max in flight and ack wait, int64 start delta);
- replay of a missing channel (JetStream's hint; NATS Streaming must not create it);
- channels too long for the stream natsctl would create.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import math
import os
import re
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from natsctl.core import config, contexts
from natsctl.core.errors import UsageError
from natsctl.core.settings import finish, merge
from natsctl.core.timeparse import MAX_SECONDS, MAX_TIMEOUT, check_timeout, parse_duration, parse_time
from tests.helpers import failed, fixtures_dir, ok

ROOT = Path(__file__).resolve().parents[1]
NOWHERE = ["--server", "nats://127.0.0.1:1"]  # refuses at once: an error before connecting is the flag's


# --- runtime dependencies ------------------------------------------------------------------------------

# Modules nats-py imports only for a feature natsctl uses (they are extras of nats-py, not its requirements).
FEATURE_MODULES = {"nkeys": "--creds / --nkey: nats-py signs the server's nonce with it"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure(requirements: list[str]) -> set[str]:
    """Distributions a plain ``pip install natsctl`` brings: the requirements and theirs, no extras."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonical(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError:
            pass  # not installed here: it is still declared, which is what this checks
    return seen


def imported_modules() -> dict[str, str]:
    """Top-level third-party module -> the first natsctl file importing it (lazy imports included)."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "natsctl").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("natsctl", "__future__"):
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def not_installed_by(requirements: list[str]) -> list[str]:
    closure = runtime_closure(requirements)
    owners = importlib.metadata.packages_distributions()
    needed = {**imported_modules(), **FEATURE_MODULES}
    missing = []
    for module, why in sorted(needed.items()):
        distributions = {canonical(d) for d in owners.get(module, [])}
        if not distributions & closure:
            missing.append(f"{module} ({why}; from {sorted(distributions) or 'no installed distribution'})")
    return missing


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_every_module_natsctl_imports_comes_with_its_runtime_install():
    missing = not_installed_by(project()["dependencies"])
    assert missing == [], "not in [project].dependencies (nor brought by them):\n" + "\n".join(missing)


def test_the_dependency_check_catches_a_module_only_the_test_extra_brings():
    runtime = [
        r for r in project()["dependencies"] if canonical(r.split(">")[0].split("<")[0].split("=")[0]) != "nkeys"
    ]
    assert any(m.startswith("nkeys ") for m in not_installed_by(runtime))
    assert any("nkeys" in r for r in project()["optional-dependencies"]["test"] + project()["dependencies"])


# --- durations and timeouts ------------------------------------------------------------------------------

UNITS = ["ns", "us", "ms", "s", "m", "h", "d", "w"]
SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="0123456789.eE+-_ smhdwnuµinfatyINF", max_size=30)))
def test_a_duration_is_a_finite_number_of_seconds_in_range_or_a_usage_error(text):
    try:
        seconds = parse_duration(text, what="--ack-wait")
    except UsageError as exc:
        assert "--ack-wait" in exc.line() and "\n" not in exc.line()
        return
    assert math.isfinite(seconds) and 0 <= seconds <= MAX_SECONDS


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(UNITS)), min_size=1, max_size=4))
def test_a_duration_adds_up_its_parts(parts):
    text = "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum(n * SECONDS[unit] for n, unit in parts)
    if expected > MAX_SECONDS:
        with pytest.raises(UsageError, match="at most"):
            parse_duration(text)
    else:
        assert parse_duration(text) == pytest.approx(expected)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**30), 10**30)))
def test_a_timeout_is_finite_positive_and_at_most_a_day_or_a_usage_error(value):
    try:
        seconds = check_timeout(value)
    except UsageError as exc:
        assert exc.line().startswith("--timeout must be") and "\n" not in exc.line()
        assert not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT)
        return
    assert 0 < seconds <= MAX_TIMEOUT


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_a_point_in_time_is_a_time_or_a_usage_error(text):
    try:
        parse_time(text, what="--since")
    except UsageError as exc:
        assert "--since" in exc.line()


@pytest.mark.parametrize(
    "value, says",
    [
        ("inf", "--timeout must be a finite number of seconds, not inf"),
        ("-inf", "--timeout must be a finite number of seconds, not -inf"),
        ("nan", "--timeout must be a finite number of seconds, not nan"),
        ("Infinity", "--timeout must be a finite number of seconds, not inf"),
        ("1e999", "--timeout must be a finite number of seconds, not inf"),
        ("0", "--timeout must be more than 0 seconds, not 0"),
        ("-2", "--timeout must be more than 0 seconds, not -2"),
        ("86401", "--timeout must be at most 86400 seconds (a day), not 86401"),
        ("1e300", "--timeout must be at most 86400 seconds (a day), not 1e+300"),
    ],
)
def test_timeout_flag_out_of_range(cli_in_process, value, says):
    result = cli_in_process.run("pub", "orders", "x", *NOWHERE, f"--timeout={value}")
    assert failed(result, 2) == f"natsctl: error: {says}"


def test_the_largest_timeout_is_accepted(cli_in_process):
    result = cli_in_process.run("config", "show", "--json", "--timeout", str(MAX_TIMEOUT))
    assert json.loads(ok(result))["effective"]["timeout"]["value"] == MAX_TIMEOUT


@pytest.mark.parametrize("flag", ["--ack-wait", "--since"])
@pytest.mark.parametrize("value", ["inf", "nan", "1e999", "9" * 400 + "w", "infinity"])
def test_duration_flags_out_of_range(cli_in_process, flag, value):
    result = cli_in_process.run("sub", "orders", *NOWHERE, flag, value)
    line = failed(result, 2)
    assert flag in line


# --- config and context files ------------------------------------------------------------------------------


def config_file(home: Path, text: str) -> Path:
    path = home / ".config" / "natsctl" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def context_file(home: Path, name: str, text: str) -> Path:
    folder = home / ".config" / "nats" / "context"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = folder / f"{name}.json"
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    "text", ["a: " + "[" * 5000 + "]" * 5000, "contexts:\n  x: " + "{a: " * 3000 + "1" + "}" * 3000]
)
def test_deeply_nested_config_file(cli, isolated_home, text):
    path = config_file(isolated_home, text)
    for command in (["config", "show"], ["pub", "orders", "x", *NOWHERE]):
        line = failed(cli.run(*command), 2)
        assert line.startswith(f"natsctl: error: the config file {path} nests too deeply")


def test_deeply_nested_context_file(cli, isolated_home):
    path = context_file(isolated_home, "deep", '{"url": ' + "[" * 100000 + "]" * 100000 + "}")
    line = failed(cli.run("pub", "orders", "x", "--context", "deep"), 2)
    assert line.startswith(f"natsctl: error: the context file {path} nests too deeply")


@pytest.mark.parametrize(
    "text, says",
    [
        ("timeout: .inf", "'timeout' must be a finite number of seconds, not inf"),
        ("timeout: -.inf", "'timeout' must be a finite number of seconds, not -inf"),
        ("timeout: .nan", "'timeout' must be a finite number of seconds, not nan"),
        ("timeout: 0", "'timeout' must be more than 0 seconds, not 0"),
        ("timeout: -1.5", "'timeout' must be more than 0 seconds, not -1.5"),
        ("timeout: 1000000000", "'timeout' must be at most 86400 seconds (a day), not 1e+09"),
        ("timeout: 30s", "'timeout' must be a number, not a string"),
        ("contexts:\n  x:\n    timeout: .inf", "'contexts.x.timeout' must be a finite number of seconds, not inf"),
        ("server: [1, 2]", "'server' must list URLs as strings, not a number"),
        ("server: {a: 1}", "'server' must be a string or a list of strings, not a mapping"),
        ("servers: [[nats://a:4222]]", "'servers' must list URLs as strings, not a list"),
        ("monitor: [true]", "'monitor' must list URLs as strings, not true/false"),
        ("server: 4222", "'server' must be a string or a list of strings, not a number"),
        ("server: ' , '", "'server' names no URL; give one such as nats://host:4222, or remove the key"),
        ("server: []", "'server' names no URL; give one such as nats://host:4222, or remove the key"),
        ("monitor: [' ']", "'monitor' names no URL; give one such as http://host:8222, or remove the key"),
        ("contexts:\n  x:\n    server: [1]", "'contexts.x.server' must list URLs as strings, not a number"),
        ("tls_first: 'yes'", "'tls_first' must be true or false, not a string"),
        ("password: 12345", "'password' must be a string, not a number"),
        ("cluster_id: [a]", "'cluster_id' must be a string, not a list"),
    ],
)
def test_config_values_of_the_wrong_kind(cli_in_process, isolated_home, text, says):
    path = config_file(isolated_home, text + "\n")
    for command in (["config", "show"], ["pub", "orders", "x", *NOWHERE]):
        assert failed(cli_in_process.run(*command), 2) == f"natsctl: error: the config file {path}: {says}"


def test_an_empty_server_in_the_config_file_means_not_set(cli_in_process, isolated_home):
    config_file(isolated_home, "server: ''\n")
    effective = json.loads(ok(cli_in_process.run("config", "show", "--json")))["effective"]
    assert effective["servers"] == {"value": ["nats://127.0.0.1:4222"], "source": "default"}


@pytest.mark.parametrize(
    "document, says",
    [
        ({"url": True}, "'url' must be a string, not true/false"),
        ({"url": ["nats://a:4222"]}, "'url' must be a string, not an array"),
        ({"url": 4222}, "'url' must be a string, not a number"),
        ({"password": {"v": 1}}, "'password' must be a string, not an object"),
        ({"tls_first": "true"}, "'tls_first' must be true or false, not a string"),
        (
            {"url": " , "},
            "'url' is ' , ', which names no server; set it to a URL such as nats://host:4222, or to \"\" for none",
        ),
    ],
)
def test_context_values_of_the_wrong_kind(cli_in_process, isolated_home, document, says):
    path = context_file(isolated_home, "bad", json.dumps(document))
    line = failed(cli_in_process.run("pub", "orders", "x", "--context", "bad"), 2)
    assert line == f"natsctl: error: the context file {path}: {says}"


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
WHERE = Path("/config/natsctl/config.yaml")


def settle(layer: dict) -> None:
    """What natsctl does with a file's settings once read: merged over the defaults, paths expanded."""
    finish(merge(layer))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(config.KEYS)), JSONISH, min_size=1, max_size=3), st.booleans())
@example({"server": [1, 2]}, False)
@example({"timeout": math.inf}, True)
@example({"monitor": [[]]}, False)
def test_any_config_value_is_taken_or_refused_in_one_line_naming_file_and_key(section, in_context):
    document = {"contexts": {"ctx": section}} if in_context else section
    raw = yaml.safe_dump(document).encode()
    try:
        parsed = config.parse(raw, WHERE)
    except config.ConfigFileError as exc:
        line = exc.line()
        assert "\n" not in line and str(WHERE) in line
        assert any(f"'{'contexts.ctx.' if in_context else ''}{key}'" in line for key in section), line
        return
    try:
        settle(config.context_overrides(parsed, "ctx") if in_context else config.to_layer(parsed))
    except UsageError as exc:  # e.g. a server URL that cannot be one: said by the URL check
        assert "\n" not in exc.line()


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(contexts.FIELDS)), JSONISH, min_size=1, max_size=3))
@example({"url": True})
@example({"creds": True})
def test_any_context_value_is_taken_or_refused_in_one_line_naming_file_and_key(document):
    where = Path("/config/nats/context/x.json")
    try:
        parsed = contexts.parse(json.dumps(document).encode(), where)
    except contexts.ContextFileError as exc:
        line = exc.line()
        assert "\n" not in line and str(where) in line
        assert any(repr(key) in line for key in document), line
        return
    try:
        settle(contexts.to_layer(parsed))
    except UsageError as exc:
        assert "\n" not in exc.line()


# --- NATS_URL and --server naming nothing -------------------------------------------------------------------


@pytest.mark.parametrize("value", [" ", ",", " , ", ",,", "\t"])
def test_nats_url_naming_no_server(cli_in_process, value):
    result = cli_in_process.run("pub", "orders", "x", env={"NATS_URL": value})
    assert failed(result, 2) == (
        f"natsctl: error: NATS_URL is {value!r}, which names no server; "
        "set it to a URL such as nats://host:4222, or unset it"
    )


def test_an_empty_nats_url_is_unset(cli_in_process):
    effective = json.loads(ok(cli_in_process.run("config", "show", "--json", env={"NATS_URL": ""})))["effective"]
    assert effective["servers"] == {"value": ["nats://127.0.0.1:4222"], "source": "default"}


def test_nats_monitor_url_naming_no_url(cli_in_process):
    result = cli_in_process.run("channels", env={"NATS_MONITOR_URL": " ,"})
    assert failed(result, 2) == (
        "natsctl: error: NATS_MONITOR_URL is ' ,', which names no monitoring URL; "
        "set it to a URL such as http://host:8222, or unset it"
    )


@pytest.mark.parametrize("value", ["", ",", " "])
@pytest.mark.parametrize("command", [["pub", "orders", "x"], ["context", "add", "staging"]])
def test_server_flag_naming_no_server(cli_in_process, isolated_home, command, value):
    result = cli_in_process.run(*command, "--server", value)
    assert (
        failed(result, 2) == f"natsctl: error: --server {value!r} names no server; give a URL such as nats://host:4222"
    )
    assert not (isolated_home / ".config" / "nats" / "context" / "staging.json").exists()


# --- NATS Streaming wire limits -------------------------------------------------------------------------------


STAN_NOWHERE = [*NOWHERE, "--cluster-id", "nowhere"]


@pytest.mark.parametrize(
    "args, says",
    [
        (
            ["--max-in-flight", "2147483648"],
            "--max-in-flight 2147483648 is more than NATS Streaming takes (at most 2147483647)",
        ),
        (
            ["--max-in-flight", str(2**64)],
            f"--max-in-flight {2**64} is more than NATS Streaming takes (at most 2147483647)",
        ),
        (
            ["--ack-wait", "596524h"],
            "--ack-wait 596524h is more than NATS Streaming takes (at most 2147483647s, about 68 years)",
        ),
        (
            ["--ack-wait", "2147483648"],
            "--ack-wait 2147483648 is more than NATS Streaming takes (at most 2147483647s, about 68 years)",
        ),
    ],
)
def test_nats_streaming_limits_are_checked_before_connecting(cli_in_process, args, says):
    # The server is unreachable: a check made after connecting would report that instead (exit 3).
    assert failed(cli_in_process.run("sub", "orders", *STAN_NOWHERE, *args), 2) == f"natsctl: error: {says}"


def test_jetstream_takes_what_nats_streaming_cannot(cli_in_process):
    result = cli_in_process.run("sub", "orders", *NOWHERE, "--max-in-flight", "2147483648", "--ack-wait", "596524h")
    assert failed(result, 3).startswith("natsctl: error: cannot connect to nats://127.0.0.1:1")
    result = cli_in_process.run("sub", "orders", *NOWHERE, "--max-in-flight", str(2**63))
    assert (
        failed(result, 2)
        == f"natsctl: error: --max-in-flight {2**63} is more than JetStream takes (at most {2**63 - 1})"
    )


@pytest.fixture
def stan() -> Iterator:
    """The NATS Streaming double with its monitoring port; natsctl is pointed at both."""
    from tests.stan_double.fixtures import start_stan

    server = start_stan("0.23.2", monitoring=True)
    try:
        yield server
    finally:
        server.cleanup()


def stan_channel(stan, name: str) -> dict | None:
    """The double's own answer for one channel (None: it does not exist)."""
    url = f"{stan.monitor_url}/streaming/channelsz?channel={urllib.request.quote(name, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        assert exc.code == 404 and exc.read() == f"Channel {name} not found\n".encode()
        return None


def test_nats_streaming_limits_at_the_edge_and_a_start_before_int64(cli, stan):
    args = [*stan.cli_args(), "--exit-at-end", "--raw"]
    ok(cli.run("pub", "edge", "a", *stan.cli_args()))
    at_limit = cli.run("sub", "edge", "--all", "--max-in-flight", "2147483647", "--ack-wait", "2147483647s", *args)
    assert ok(at_limit) == "a\n"
    # A start 2000 years back is more nanoseconds than the int64 on the wire: it means every message.
    since = cli.run("sub", "edge", "--since", "0001-01-01T00:00:00Z", *args)
    assert ok(since) == "a\n"


# --- replay of a missing channel ----------------------------------------------------------------------------------

REPLAY_HINT = "check the name ('natsctl channels' lists the channels there); reading a channel never creates it"


def test_replay_of_a_missing_channel_on_jetstream(cli, server):
    line = failed(cli.run("replay", "nosuch", "--server", server.url), 7)
    assert line == f"natsctl: error: no stream holds channel 'nosuch'; {REPLAY_HINT}"
    assert "--no-create" not in line
    # sub --no-create keeps the hint to drop it
    line = failed(cli.run("sub", "nosuch", "--no-create", "--server", server.url), 7)
    assert line.endswith("drop --no-create to let natsctl create it, or create a stream for that subject")


def test_replay_of_a_missing_channel_on_nats_streaming_does_not_create_it(cli, stan):
    monitor = {"NATS_MONITOR_URL": stan.monitor_url}
    result = cli.run("replay", "nosuch", *stan.cli_args(), env=monitor)
    assert failed(result, 7) == (
        f"natsctl: error: no channel 'nosuch' on NATS Streaming cluster {stan.cluster_id!r} "
        f"(its monitoring port {stan.monitor_url} does not list it); {REPLAY_HINT}"
    )
    assert stan_channel(stan, "nosuch") is None
    # An existing channel, with messages or empty (a subscription created it), replays as before.
    ok(cli.run("pub", "there", "one", *stan.cli_args()))
    assert ok(cli.run("replay", "there", "--raw", *stan.cli_args(), env=monitor)) == "one\n"
    ok(cli.run("sub", "empty", "--exit-at-end", *stan.cli_args()))
    assert stan_channel(stan, "empty") == {
        "name": "empty",
        "msgs": 0,
        "bytes": 0,
        "first_seq": 0,
        "last_seq": 0,
        "subs_count": 0,
    }
    replayed = cli.run("replay", "empty", "--raw", *stan.cli_args(), env=monitor)
    assert replayed.returncode == 0 and replayed.stdout == b"" and replayed.stderr == b""


def test_replay_on_nats_streaming_says_when_it_cannot_check(cli, stan):
    # A monitoring port that is a plain nats-server's (404 for every /streaming path) must not read as
    # "missing"; nothing listening there neither. Either way the replay goes on and says what it could not do.
    for url in (stan.nats.monitor_url, "http://127.0.0.1:1"):
        result = cli.run("replay", "unchecked", *stan.cli_args(), env={"NATS_MONITOR_URL": url})
        assert result.returncode == 0 and result.stdout == b"", result.stderr
        [line] = result.stderr.decode().splitlines()
        assert line.startswith(f"natsctl: warning: cannot check that channel 'unchecked' exists ({url}")
        assert line.endswith("point NATS_MONITOR_URL or 'monitor' in the config at the server's monitoring port")


@pytest.mark.parametrize("version", ["0.17.0", "0.23.2"])
def test_the_doubles_channel_answer_has_the_recorded_fields(version):
    """b_publish recorded /streaming/channelsz?channel=ticket:created after three publishes."""
    from tests.stan_double.fixtures import start_stan

    recorded = next(
        json.loads(line)["fields"]["body"]
        for line in (fixtures_dir("stan-protocol", version) / "b_publish.jsonl").read_text().splitlines()
        if '"/streaming/channelsz?channel=ticket:created"' in line
    )
    stan = start_stan(version, monitoring=True)
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for data in ("1", "2", "3"):
            done = subprocess.run(
                [sys.executable, "-m", "natsctl", "pub", "ticket:created", data, *stan.cli_args()],
                env=env,
                capture_output=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
        mine = stan_channel(stan, "ticket:created")
        serverz = httpx.get(f"{stan.monitor_url}/streaming/serverz", timeout=10).json()
    finally:
        stan.cleanup()
    assert sorted(mine) == sorted(recorded)
    assert {k: mine[k] for k in ("name", "msgs", "first_seq", "last_seq")} == {
        k: recorded[k] for k in ("name", "msgs", "first_seq", "last_seq")
    }
    assert (serverz["cluster_id"], serverz["version"], serverz["channels"]) == (stan.cluster_id, version, 1)


# --- channels too long for a stream ----------------------------------------------------------------------------


def streams(server) -> list[str]:
    """The streams the server holds, from its monitoring port."""
    jsz = httpx.get(f"{server.monitor_url}/jsz?streams=true", timeout=10).json()
    return [d["name"] for account in jsz.get("account_details") or [] for d in account.get("stream_detail") or []]


def test_channel_too_long_for_its_stream(cli, server):
    plain = "a" * 256  # the stream is named like the channel
    line = failed(cli.run("pub", plain, "x", "--server", server.url), 2)
    assert line == (
        f"natsctl: error: channel '{'a' * 40}...' is too long for a stream of its own: its stream name would "
        "have 256 characters, JetStream allows 255; use a channel name of at most 255 characters, or create "
        "a stream that covers this subject yourself"
    )
    dotted = "a." * 124 + "b"  # 249 characters; the stream name gets a 7-character suffix
    line = failed(cli.run("sub", dotted, "--server", server.url), 2)
    assert "its stream name would have 256 characters, JetStream allows 255; use a channel name of at most 248" in line
    assert streams(server) == []
    ok(cli.run("pub", "b" * 255, "x", "--server", server.url))  # the longest that fits
    assert streams(server) == ["b" * 255]


# --- other files natsctl reads ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line", ["[" * 100000 + "]" * 100000, '{"line": 1e999, "seq": 1}', '{"line": 1, "seq": -1e999}']
)
def test_record_file_lines_natsctl_cannot_take(cli_in_process, tmp_path, line):
    record = tmp_path / "confirmed.jsonl"
    record.write_text('{"line": 1, "seq": 1}\n' + line + "\n")
    result = cli_in_process.run("verify", "orders", "--against", str(record), *NOWHERE)
    assert failed(result, 2) == f"natsctl: error: {record} line 2 is not a natsctl pub --record entry"


@pytest.mark.parametrize("value", ["nan", "inf", "1e308"])
def test_watch_interval_must_be_a_usable_number(cli_in_process, value):
    result = cli_in_process.run("server", "--watch", value, "-m", "http://127.0.0.1:1")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("natsctl: error: --watch must be"), lines
