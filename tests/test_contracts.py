"""Event contracts: the catalog (where it comes from, its shape), validation on pub, sub and replay,
catalog check and infer. Messaging tests run on JetStream and on the NATS Streaming double, one server
of each kind for the whole module (each test uses its own channels)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import as_json, error_line, failed, ok
from tests.servers import NatsServer
from tests.stan_double.fixtures import start_stan

SCHEMA = {
    "type": "object",
    "required": ["id", "title", "price", "userId", "version"],
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "price": {"type": "number", "minimum": 0},
        "userId": {"type": "string"},
        "version": {"type": "integer", "minimum": 0},
    },
}


def ticket(n: int, price: float = 10, version: int = 0) -> str:
    return json.dumps({"id": f"t{n}", "title": f"concert {n}", "price": price, "userId": "u1", "version": version})


class Target:
    """A server of one kind, the flags and environment that point natsctl at it."""

    def __init__(self, kind: str, args: list[str], env: dict[str, str]) -> None:
        self.kind, self.args, self.env = kind, args, env

    @property
    def jetstream(self) -> bool:
        return self.kind == "jetstream"


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Target]]:
    js = NatsServer().start()
    stan = None
    try:
        stan = start_stan("0.23.2", monitoring=True)
        yield {
            "jetstream": Target("jetstream", ["--server", js.url], {}),
            "stan": Target("stan", stan.cli_args(), {"NATS_MONITOR_URL": stan.monitor_url or ""}),
        }
    finally:
        js.cleanup()
        if stan is not None:
            stan.cleanup()


@pytest.fixture(params=["jetstream", "stan"])
def target(request, servers) -> Target:
    return servers[request.param]


@pytest.fixture
def catalog(tmp_path) -> Path:
    """A catalog with ticket:* channels (inline schema and a file reference) and a wildcard."""
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "ticket.json").write_text(json.dumps(SCHEMA))
    path = tmp_path / "catalog.yaml"
    path.write_text(
        "channels:\n"
        f"  'ticket:created':\n    schema: {json.dumps(SCHEMA)}\n    key: id\n    version: version\n"
        "  'ticket:updated':\n    schema: schemas/ticket.json\n    key: id\n    version: version\n"
        "  'orders.*':\n    schema: {type: object, required: [order]}\n"
        "  'orders.eu':\n    schema: {type: object, required: [eu]}\n"
        "  'audit.>':\n    schema: {type: array}\n"
    )
    return path


def channel(prefix: str = "ticket") -> str:
    return f"{prefix}:{uuid.uuid4().hex[:8]}"


def run(cli, target: Target | None, *args: str, input: bytes | str | None = None, env=None, cwd=None):
    data = input.encode() if isinstance(input, str) else input
    return subprocess.run(
        cli.command(*args, *(target.args if target else [])),
        input=data,
        capture_output=True,
        env={**cli.env, **(target.env if target else {}), **(env or {})},
        cwd=cwd,
        timeout=60,
        stdin=None if data is not None else subprocess.DEVNULL,
    )


def stored(cli, target: Target, name: str) -> list[str]:
    """The payloads stored in channel ``name`` (replay, nothing acked); [] when the channel does not exist."""
    result = run(cli, target, "replay", name, "--raw")
    if result.returncode == 7:
        return []
    return ok(result).splitlines()


def catalog_for(tmp_path: Path, name: str, schema: dict | None = None, extra: str = "") -> Path:
    path = tmp_path / f"{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(
        f"channels:\n  '{name}':\n    schema: {json.dumps(schema or SCHEMA)}\n    key: id\n    version: version\n{extra}"
    )
    return path


# -- the catalog ---------------------------------------------------------------------------------------


def test_inline_schemas_file_references_and_wildcards(cli_in_process, catalog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)
    listing = as_json(cli_in_process.run("catalog", "ls", "--catalog", str(catalog), "--json"))
    assert listing["from"] == "--catalog"
    assert [(c["channel"], c["schema_file"], c["valid_schema"]) for c in listing["channels"]] == [
        ("ticket:created", None, True),
        ("ticket:updated", "schemas/ticket.json", True),
        ("orders.*", None, True),
        ("orders.eu", None, True),
        ("audit.>", None, True),
    ]
    # the file reference is read relative to the catalog file, whatever the working directory
    shown = as_json(cli_in_process.run("catalog", "show", "ticket:updated", "--catalog", str(catalog), "--json"))
    assert shown["schema"] == SCHEMA and shown["key"] == "id" and shown["version"] == "version"
    # a channel's own entry wins over a wildcard; * is one token, > one or more
    entry = lambda name: as_json(  # noqa: E731
        cli_in_process.run("catalog", "show", name, "--catalog", str(catalog), "--json")
    )["channel"]
    assert entry("orders.us") == "orders.*"
    assert entry("orders.eu") == "orders.eu"
    assert entry("audit.a.b") == "audit.>"
    missing = cli_in_process.run("catalog", "show", "orders.us.west", "--catalog", str(catalog))
    assert failed(missing, 2) == (
        f"natsctl: error: the catalog {catalog} (from --catalog) has no entry for channel 'orders.us.west'; "
        "see 'natsctl catalog ls'"
    )


def test_the_four_places_and_the_working_directory_in_order(cli_in_process, tmp_path, isolated_home, monkeypatch):
    def make(tag: str, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{tag}.yaml"
        path.write_text(f"channels:\n  '{tag}':\n    schema: {{type: object}}\n")
        return path

    work = tmp_path / "work"
    make("natsctl-catalog", work)  # ./natsctl-catalog.yaml, channel 'natsctl-catalog'
    config_dir = isolated_home / ".config" / "natsctl"
    make("config", config_dir / "catalogs")
    (config_dir / "config.yaml").write_text("catalog: catalogs/config.yaml\n")  # relative to the config file
    context_dir = isolated_home / ".config" / "nats" / "context"
    make("context", context_dir)
    (context_dir / "dev.json").write_text(json.dumps({"url": "nats://127.0.0.1:4222", "catalog": "context.yaml"}))
    env_file = make("env", tmp_path / "env")
    flag_file = make("flag", tmp_path / "flag")
    monkeypatch.chdir(work)

    def source(*args: str, env: dict | None = None) -> tuple[str, list[str]]:
        doc = as_json(
            cli_in_process.run("catalog", "ls", "--json", *args, env={"NATSCTL_CATALOG": None, **(env or {})})
        )
        return doc["from"], [c["channel"] for c in doc["channels"]]

    everything = {"NATSCTL_CATALOG": str(env_file), "NATS_CONTEXT": "dev"}
    assert source("--catalog", str(flag_file), env=everything) == ("--catalog", ["flag"])
    assert source(env=everything) == ("NATSCTL_CATALOG", ["env"])
    assert source(env={"NATS_CONTEXT": "dev"}) == ("context dev", ["context"])
    assert source() == ("config", ["config"])
    (config_dir / "config.yaml").write_text("server: nats://127.0.0.1:4222\n")
    assert source() == ("./natsctl-catalog.yaml", ["natsctl-catalog"])


FROM = "the catalog {path} (from --catalog)"


@pytest.mark.parametrize(
    "text, files, expected",
    [
        ("channels: [a, b\n", {}, "the catalog {path} is not valid YAML (line 2, column 1)"),
        ("channels: [a, b]\n", {}, FROM + ": 'channels' must map channel names (or wildcards) to entries"),
        ("chanels: {}\n", {}, FROM + ": unknown top-level key 'chanels' (a catalog has 'channels')"),
        (
            "channels:\n  x:\n    scheme: {}\n",
            {},
            FROM + ": channel 'x': unknown key 'scheme' (known: schema, key, version, description)",
        ),
        (
            "channels:\n  'a.*x':\n    schema: {}\n",
            {},
            FROM + ": channel 'a.*x': a wildcard is a whole token: '*' for one, a last '>' for the rest",
        ),
        (
            "channels:\n  x:\n    schema: missing.json\n",
            {},
            FROM + ": channel 'x': the schema file {dir}/missing.json does not exist (paths are relative to the "
            "catalog file)",
        ),
        (
            "channels:\n  x:\n    schema: s.json\n",
            {"s.json": "{nope"},
            FROM + ": channel 'x': the schema file {dir}/s.json is not valid JSON (line 1, column 2)",
        ),
        (
            "channels:\n  x:\n    schema: {}\n    key: 'a..b'\n",
            {},
            FROM + ": channel 'x': 'key': 'a..b' is not a dotted field path (such as id or ticket.id)",
        ),
    ],
    ids=["yaml", "channels-list", "top-key", "entry-key", "wildcard", "missing-file", "file-not-json", "key-path"],
)
def test_an_invalid_catalog_is_one_line_naming_the_place(cli_in_process, tmp_path, text, files, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    result = cli_in_process.run("catalog", "ls", "--catalog", str(path))
    assert failed(result, 2) == "natsctl: error: " + expected.format(path=path, dir=tmp_path)


def test_a_schema_that_is_not_json_schema_is_refused_before_anything_is_sent(cli, cli_in_process, servers, tmp_path):
    import jsonschema  # the reference validator agrees that it is not a schema

    bad = {"type": "object", "properties": {"price": {"type": "numbr"}}}
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.Draft202012Validator.check_schema(bad)
    js = servers["jetstream"]
    name = channel()
    path = catalog_for(tmp_path, name, bad)
    result = run(cli, js, "pub", name, ticket(1), "--catalog", str(path))
    assert failed(result, 2).startswith(
        f"natsctl: error: the catalog {path} (from --catalog): channel '{name}' schema: not a valid JSON Schema: "
        "$.properties.price.type: "
    )
    assert stored(cli, js, name) == []
    listing = cli_in_process.run("catalog", "ls", "--catalog", str(path), "--json")
    assert listing.returncode == 2
    assert json.loads(listing.stdout)["channels"][0]["valid_schema"] is False


# -- pub -------------------------------------------------------------------------------------------------


def test_a_file_with_one_bad_line_publishes_nothing(cli, target, tmp_path):
    name = channel()
    path = catalog_for(tmp_path, name)
    events = tmp_path / "events.jsonl"
    lines = [ticket(n) for n in range(1, 21)]
    lines[16] = ticket(17, price=-3)
    events.write_text("\n".join(lines) + "\n")
    result = run(cli, target, "pub", name, "--file", str(events), "--catalog", str(path))
    assert failed(result, 2) == (
        f"natsctl: error: line 17: $.price: -3 is less than the minimum of 0; 1 of 20 messages break the contract "
        f"of '{name}', nothing was published; fix them or pass --no-validate"
    )
    assert stored(cli, target, name) == []
    # the same file with --no-validate: all of it
    ok(run(cli, target, "pub", name, "--file", str(events), "--catalog", str(path), "--no-validate", "-q"))
    assert stored(cli, target, name) == lines


def test_a_pipe_stops_at_the_first_bad_line_and_says_what_was_published(cli, target, tmp_path):
    name = channel()
    path = catalog_for(tmp_path, name)
    lines = [ticket(1), ticket(2), ticket(3), '{"id": "t4", "price": 1}', ticket(5)]
    result = run(cli, target, "pub", name, "--lines", "--catalog", str(path), input="\n".join(lines) + "\n")
    assert result.returncode == 2
    err = result.stderr.decode()
    assert error_line(err, stdout=None) == (
        'natsctl: error: line 4: $: "title" is a required property (and 2 more errors); publishing stopped there: '
        f"it breaks the contract of '{name}', and 3 messages before it were sent"
    )
    summary = result.stdout.decode()
    assert summary.startswith(f"published 3 messages to {name} (")
    assert stored(cli, target, name) == lines[:3]


def test_non_json_and_binary_payloads_are_invalid_on_a_channel_with_a_schema(cli, servers, tmp_path):
    js = servers["jetstream"]
    name = channel()
    path = catalog_for(tmp_path, name)
    not_json = run(cli, js, "pub", name, "hello", "--catalog", str(path))
    assert failed(not_json, 2).startswith("natsctl: error: message 1: not JSON (Expecting value); 1 of 1 messages")
    binary = run(cli, js, "pub", name, "--catalog", str(path), input=b"\xff\xfe\x00")
    assert "not JSON: a binary payload (3 bytes)" in failed(binary, 2)
    assert stored(cli, js, name) == []
    # a channel the catalog does not name is not checked
    free = f"free:{uuid.uuid4().hex[:6]}"
    ok(run(cli, js, "pub", free, "hello", "--catalog", str(path), "-q"))
    assert stored(cli, js, free) == ["hello"]


# -- sub / replay --validate ----------------------------------------------------------------------------


def seeded(cli, target: Target, tmp_path: Path) -> tuple[str, Path, list[str]]:
    """A channel of 5 events, the 2nd and the 4th invalid (published with --no-validate)."""
    name = channel()
    path = catalog_for(tmp_path, name)
    lines = [ticket(1), ticket(2, price=-1), ticket(3), '{"id": 4}', ticket(5)]
    ok(run(cli, target, "pub", name, "--lines", "--no-validate", "-q", input="\n".join(lines) + "\n"))
    return name, path, lines


def test_validate_adds_valid_and_errors_to_every_envelope(cli, target, tmp_path):
    name, path, lines = seeded(cli, target, tmp_path)
    out = ok(run(cli, target, "replay", name, "--json", "--validate", "--catalog", str(path)))
    envelopes = [json.loads(line) for line in out.splitlines()]
    assert [(e["seq"], e["data"], e["valid"], e["errors"]) for e in envelopes] == [
        (1, lines[0], True, []),
        (2, lines[1], False, ["$.price: -1 is less than the minimum of 0"]),
        (3, lines[2], True, []),
        (
            4,
            lines[3],
            False,
            [
                '$: "title" is a required property',
                '$: "price" is a required property',
                '$: "userId" is a required property',
                '$: "version" is a required property',
                '$.id: 4 is not of type "string"',
            ],
        ),
        (5, lines[4], True, []),
    ]
    # without --validate the envelope is unchanged
    plain = json.loads(ok(run(cli, target, "replay", name, "--json", "--count", "1")).splitlines()[0])
    assert "valid" not in plain and "errors" not in plain


def test_on_invalid_skip_writes_the_valid_ones_and_acks_all(cli, target, tmp_path):
    name, path, lines = seeded(cli, target, tmp_path)
    args = ("sub", name, "--all", "-e", "--raw", "--durable", "d", "--validate", "--on-invalid", "skip")
    result = run(cli, target, *args, "--catalog", str(path), *(["--client-id", "c1"] if not target.jetstream else []))
    assert ok(result).splitlines() == [lines[0], lines[2], lines[4]]
    assert result.stderr.decode().splitlines() == [
        f"natsctl: warning: skipped {name} sequence 2: $.price: -1 is less than the minimum of 0",
        f'natsctl: warning: skipped {name} sequence 4: $: "title" is a required property; '
        '$: "price" is a required property; $: "userId" is a required property; $: "version" is a required property; '
        '$.id: 4 is not of type "string"',
    ]
    # everything was acked: the durable has nothing left
    again = run(cli, target, *args, "--catalog", str(path), *(["--client-id", "c1"] if not target.jetstream else []))
    assert ok(again) == ""


def test_on_invalid_stop_exits_14_before_the_bad_event_which_stays_unacked(cli, target, tmp_path):
    name, path, lines = seeded(cli, target, tmp_path)
    ids = ["--client-id", "c2"] if not target.jetstream else []
    durable = ("--durable", "d", "--ack-wait", "1s", *ids)
    args = ("sub", name, "--all", "-e", "--raw", *durable, "--validate", "--on-invalid", "stop")
    result = run(cli, target, *args, "--catalog", str(path))
    assert result.returncode == 14
    assert result.stdout.decode().splitlines() == [lines[0]]
    assert error_line(result.stderr.decode(), stdout=None) == (
        f"natsctl: error: {name} sequence 2 breaks the contract of '{name}': $.price: -1 is less than the minimum "
        "of 0; stopped before it (it stays unacked)"
    )
    # nothing from the bad event on was acked: the durable gets all of it again, the bad one included
    # (JetStream redelivers it after the ack wait, so newer ones may come first)
    resumed = run(cli, target, "sub", name, "--raw", *durable, "--count", "4")
    assert sorted(ok(resumed).splitlines()) == sorted(lines[1:])


def test_on_invalid_dead_letter_parks_the_event_with_its_errors(cli, target, tmp_path):
    name, path, lines = seeded(cli, target, tmp_path)
    result = run(
        cli, target, "replay", name, "--raw", "--validate", "--on-invalid", "dead-letter", "--catalog", str(path)
    )
    assert ok(result).splitlines() == [lines[0], lines[2], lines[4]]
    parked = [json.loads(line) for line in ok(run(cli, target, "replay", f"dead-letter.{name}", "--json")).splitlines()]
    assert len(parked) == 2
    if target.jetstream:
        assert [p["data"] for p in parked] == [lines[1], lines[3]]
        headers = parked[0]["headers"]
        assert headers["Natsctl-Dl-Channel"] == [name]
        assert headers["Natsctl-Dl-Sequence"] == ["2"]
        assert headers["Natsctl-Dl-Reason"] == ["contract: $.price: -1 is less than the minimum of 0"]
    else:
        wrappers = [json.loads(p["data"]) for p in parked]
        assert [(w["channel"], w["sequence"], w["data"]) for w in wrappers] == [
            (name, 2, lines[1]),
            (name, 4, lines[3]),
        ]
        assert wrappers[0]["reason"] == "contract: $.price: -1 is less than the minimum of 0"
        assert wrappers[0]["natsctl_dead_letter"] == 1


def test_exec_handles_only_the_valid_events_and_the_skipped_ones_are_acked(cli, servers, tmp_path):
    js = servers["jetstream"]
    name, path, lines = seeded(cli, js, tmp_path)
    handled = tmp_path / "handled"
    args = ("sub", name, "--all", "-e", "--durable", "x", "--validate", "--on-invalid", "skip", "--catalog", str(path))
    handler = f"cat >> {handled}; echo >> {handled}"
    result = run(cli, js, *args, "--exec", handler)
    assert result.returncode == 0, result.stderr
    assert handled.read_text().splitlines() == [lines[0], lines[2], lines[4]]
    assert ok(run(cli, js, *args, "--raw")) == ""  # nothing left for the durable


def test_validate_flags_are_checked_before_connecting(cli_in_process, tmp_path):
    path = catalog_for(tmp_path, "ticket:x")
    bad = cli_in_process.run("replay", "ticket:x", "--on-invalid", "skip", "--catalog", str(path))
    assert failed(bad, 2) == "natsctl: error: --on-invalid goes with --validate"
    stray = cli_in_process.run("replay", "ticket:x", "--validate", "--dead-letter", "dl.x", "--catalog", str(path))
    assert failed(stray, 2) == (
        "natsctl: error: --dead-letter names where messages are parked: add --exec CMD (failing handlers) "
        "or --validate --on-invalid dead-letter (invalid events)"
    )
    wrong = cli_in_process.run("replay", "ticket:x", "--validate", "--on-invalid", "drop", "--catalog", str(path))
    assert failed(wrong, 2) == "natsctl: error: --on-invalid must be one of skip, stop, dead-letter, not 'drop'"
    nothing = cli_in_process.run("replay", "ticket:y", "--validate", "--catalog", str(path))
    assert failed(nothing, 2) == (
        f"natsctl: error: the catalog {path} (from --catalog) has no entry for channel 'ticket:y'; "
        "see 'natsctl catalog ls'"
    )


# -- catalog check / infer --------------------------------------------------------------------------------


def test_catalog_check_counts_invalid_events_by_error(cli, target, tmp_path):
    name, path, _ = seeded(cli, target, tmp_path)
    ok(run(cli, target, "pub", name, "not json", "--no-validate", "-q"))
    result = run(cli, target, "catalog", "check", name, "--catalog", str(path), "--json")
    assert result.returncode == 12
    report = json.loads(result.stdout)
    assert (report["events"], report["valid"], report["invalid"]) == (6, 3, 3)
    assert [(r["error"], r["events"], r["first_seq"]) for r in report["errors"]] == [
        ("$.price minimum", 1, 2),
        ("$ required", 1, 4),
        ("$.id type", 1, 4),
        ("not JSON", 1, 6),
    ]
    assert error_line(result.stderr.decode(), stdout=None) == (
        f"natsctl: error: 3 of 6 events in {name} break the contract of '{name}'"
    )
    table = run(cli, target, "catalog", "check", name, "--catalog", str(path))
    assert table.returncode == 12
    assert table.stdout.decode().splitlines()[0] == f"{name}: 6 events, 3 valid, 3 invalid (contract {name})"


def test_catalog_check_of_a_valid_channel_exits_0(cli, servers, tmp_path):
    js = servers["jetstream"]
    name = channel()
    path = catalog_for(tmp_path, name)
    ok(run(cli, js, "pub", name, ticket(1), "--catalog", str(path), "-q"))
    report = as_json(run(cli, js, "catalog", "check", name, "--catalog", str(path), "--json"))
    assert (report["events"], report["invalid"], report["errors"]) == (1, 0, [])


def test_infer_on_1000_varied_events_accepts_them_all_and_rejects_a_changed_type(cli, servers, tmp_path):
    import jsonschema

    js = servers["jetstream"]
    name = channel()
    events = []
    for n in range(1000):
        event = {"id": f"t{n}", "title": f"show {n}", "price": n % 50 + (0.5 if n % 3 else 0), "userId": f"u{n % 40}"}
        event["version"] = n % 5
        event["status"] = ["open", "reserved", "sold"][n % 3]
        if n % 4:
            event["tags"] = [f"tag{n % 7}"]
        if n % 10 == 0:
            event["venue"] = {"city": ["Paris", "Oslo"][n % 2], "seats": n}
        events.append(json.dumps(event))
    source = tmp_path / "varied.jsonl"
    source.write_text("\n".join(events) + "\n")
    ok(run(cli, js, "pub", name, "--file", str(source), "-q"))
    result = run(cli, js, "catalog", "infer", name, "--last", "1000")
    schema = json.loads(ok(result))
    assert result.stderr.decode() == f"natsctl: inferred from 1000 events of {name}\n"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert sorted(schema["required"]) == ["id", "price", "status", "title", "userId", "version"]
    assert schema["properties"]["status"]["enum"] == ["open", "reserved", "sold"]
    assert "enum" not in schema["properties"]["title"]
    validator = jsonschema.Draft202012Validator(schema)
    assert all(validator.is_valid(json.loads(e)) for e in events)
    # the schema goes into a catalog: the channel checks clean, and a changed type is refused
    path = tmp_path / "inferred.yaml"
    path.write_text(f"channels:\n  '{name}':\n    schema: {json.dumps(schema)}\n")
    assert as_json(run(cli, js, "catalog", "check", name, "--catalog", str(path), "--json"))["invalid"] == 0
    changed = json.loads(events[0]) | {"price": "12.50"}
    refused = run(cli, js, "pub", name, json.dumps(changed), "--catalog", str(path))
    assert failed(refused, 2).startswith('natsctl: error: message 1: $.price: "12.50" is not of type "number"')
    assert len(stored(cli, js, name)) == 1000
    # --last: only the newest events count
    ok(run(cli, js, "pub", name, '{"other": true}', "-q"))
    newest = json.loads(ok(run(cli, js, "catalog", "infer", name, "--last", "1")))
    assert newest["required"] == ["other"]


# -- start-up stays lazy ----------------------------------------------------------------------------------


def test_no_validator_is_imported_when_no_catalog_entry_applies(cli, servers, tmp_path):
    js = servers["jetstream"]
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['natsctl', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('natsctl', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "heavy = sorted(m for m in ('jsonschema_rs', 'orjson', 'genson', 'yaml') if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    name = channel("free")
    result = subprocess.run(
        [sys.executable, "-c", probe, "pub", name, "hello", *js.args],
        capture_output=True,
        env=cli.env,
        cwd=tmp_path,
        timeout=60,
    )
    assert "HEAVY []" in result.stderr.decode(), result.stderr.decode()
    path = catalog_for(tmp_path, "other:channel")
    with_catalog = subprocess.run(
        [sys.executable, "-c", probe, "pub", name, "hello", *js.args, "--catalog", str(path)],
        capture_output=True,
        env=cli.env,
        cwd=tmp_path,
        timeout=60,
    )
    assert "HEAVY ['yaml']" in with_catalog.stderr.decode()  # the catalog is read, no validator loaded


def test_the_file_check_numbers_lines_as_pub_does_blank_lines_and_crlf_included(cli_in_process, tmp_path):
    path = catalog_for(tmp_path, "ticket:crlf")
    events = tmp_path / "crlf.jsonl"
    events.write_bytes(ticket(1).encode() + b"\r\n\r\n" + b'{"id": "t3", "price": -2}\r\n' + ticket(4).encode())
    # refused before connecting: no server is needed to say so
    result = cli_in_process.run(
        "pub", "ticket:crlf", "--file", str(events), "--catalog", str(path), "-s", "127.0.0.1:1"
    )
    assert failed(result, 2) == (
        'natsctl: error: line 3: $: "title" is a required property (and 3 more errors); 1 of 3 messages break '
        "the contract of 'ticket:crlf', nothing was published; fix them or pass --no-validate"
    )


@pytest.mark.parametrize("with_ref", [False, True], ids=["inline", "defs-ref"])
def test_the_file_check_finds_a_bad_line_deep_in_a_large_file(cli_in_process, tmp_path, with_ref):
    schema = json.loads(json.dumps(SCHEMA))
    if with_ref:  # checked one value at a time: a $ref must resolve against the schema itself
        schema["$defs"] = {"money": {"type": "number", "minimum": 0}}
        schema["properties"]["price"] = {"$ref": "#/$defs/money"}
    path = catalog_for(tmp_path, "ticket:big", schema)
    lines = [ticket(n) for n in range(1, 8001)]  # ~650 KB: the check reads it in several chunks
    lines[6999] = ticket(7000, price=-5)
    events = tmp_path / "big.jsonl"
    events.write_text("\n".join(lines) + "\n")
    result = cli_in_process.run("pub", "ticket:big", "--file", str(events), "--catalog", str(path), "-s", "127.0.0.1:1")
    assert failed(result, 2) == (
        "natsctl: error: line 7000: $.price: -5 is less than the minimum of 0; 1 of 8000 messages break the "
        "contract of 'ticket:big', nothing was published; fix them or pass --no-validate"
    )
