"""Contexts, natsctl config and their precedence, driven through the CLI (no server needed).

``natsctl config show --json`` prints the effective settings with the layer each value came from, so
precedence is checked exactly as a user would see it.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.security_helpers import PASSWORD, TOKEN, write

# A context file exactly as natscli 0.1.x writes it (every key present, empty strings for unset ones).
NATSCLI_CONTEXT = {
    "description": "Staging through the port-forward",
    "url": "nats://127.0.0.1:14222",
    "socks_proxy": "",
    "token": "",
    "user": "staging-user",
    "password": PASSWORD,
    "creds": "",
    "nkey": "",
    "cert": "",
    "key": "",
    "ca": "/etc/staging/ca.pem",
    "nsc": "",
    "jetstream_domain": "hub",
    "jetstream_api_prefix": "",
    "jetstream_event_prefix": "",
    "inbox_prefix": "_STAGING",
    "user_jwt": "",
    "color_scheme": "",
    "tls_first": True,
    "windows_cert_store": "",
    "windows_cert_match_by": "",
    "windows_cert_match": "",
    "windows_ca_certs_match": None,
}


def config_dir(home: Path) -> Path:
    return home / ".config"


def write_context(home: Path, name: str, data: dict, mode: int = 0o600) -> Path:
    folder = config_dir(home) / "nats" / "context"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return write(folder / f"{name}.json", json.dumps(data), mode)


def write_config(home: Path, text: str, mode: int = 0o600) -> Path:
    return write(config_dir(home) / "natsctl" / "config.yaml", text, mode)


def select(home: Path, name: str) -> None:
    write(config_dir(home) / "nats" / "context.txt", name)


def effective(cli, *args: str, env: dict | None = None) -> dict:
    result = cli.run("config", "show", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)["effective"]


def value_and_source(doc: dict, name: str) -> tuple:
    return doc[name]["value"], doc[name]["source"]


def test_natscli_context_file_is_picked_up_unchanged(cli, isolated_home):
    path = write_context(isolated_home, "staging", NATSCLI_CONTEXT)
    before = path.read_bytes()
    select(isolated_home, "staging")
    doc = effective(cli)
    assert value_and_source(doc, "servers") == (["nats://127.0.0.1:14222"], "context staging")
    assert value_and_source(doc, "user") == ("staging-user", "context staging")
    assert value_and_source(doc, "password") == ("***", "context staging")
    assert value_and_source(doc, "tls_ca") == ("/etc/staging/ca.pem", "context staging")
    assert value_and_source(doc, "tls_first") == (True, "context staging")
    assert value_and_source(doc, "inbox_prefix") == ("_STAGING", "context staging")
    assert value_and_source(doc, "js_domain") == ("hub", "context staging")
    assert value_and_source(doc, "description") == ("Staging through the port-forward", "context staging")
    # The monitoring CA falls back to the context's CA (an https :8222 is usually signed by the same CA).
    assert doc["monitor_ca"]["value"] == "/etc/staging/ca.pem"
    assert path.read_bytes() == before


def test_precedence_flags_over_env_over_context_over_config(cli, isolated_home):
    write_context(isolated_home, "dev", {"url": "nats://ctx:1", "user": "ctx-user", "description": "from context"})
    select(isolated_home, "dev")
    write_config(
        isolated_home,
        "server: nats://cfg:1\nuser: cfg-user\ncluster_id: cfg-cluster\nclient_id: cfg-client\n"
        "monitor: http://cfg-monitor:8222\noutput: json\ntimeout: 7\n"
        "contexts:\n  dev:\n    cluster_id: dev-cluster\n    client_id: dev-client\n",
    )
    env = {"NATS_USER": "env-user", "NATS_CLIENT_ID": "env-client"}
    doc = effective(cli, "--server", "nats://flag:1", env=env)
    assert value_and_source(doc, "servers") == (["nats://flag:1"], "flag")
    assert value_and_source(doc, "user") == ("env-user", "env")
    assert value_and_source(doc, "client_id") == ("env-client", "env")
    assert value_and_source(doc, "description") == ("from context", "context dev")
    assert value_and_source(doc, "cluster_id") == ("dev-cluster", "config contexts.dev")
    assert value_and_source(doc, "monitor_urls") == (["http://cfg-monitor:8222"], "config")
    assert value_and_source(doc, "output") == ("json", "config")
    assert value_and_source(doc, "timeout") == (7, "config")
    assert value_and_source(doc, "connection_name") == ("natsctl", "default")
    # Without the flag and the env, the context wins over the config; the config over the defaults.
    doc = effective(cli)
    assert value_and_source(doc, "servers") == (["nats://ctx:1"], "context dev")
    assert value_and_source(doc, "user") == ("ctx-user", "context dev")
    assert value_and_source(doc, "client_id") == ("dev-client", "config contexts.dev")


def test_context_selection_flag_over_env_over_context_txt(cli, isolated_home):
    for name in ("a", "b", "c"):
        write_context(isolated_home, name, {"url": f"nats://{name}:4222"})
    select(isolated_home, "a")
    assert effective(cli)["servers"]["value"] == ["nats://a:4222"]
    assert effective(cli, env={"NATS_CONTEXT": "b"})["servers"]["value"] == ["nats://b:4222"]
    assert effective(cli, "--context", "c", env={"NATS_CONTEXT": "b"})["servers"]["value"] == ["nats://c:4222"]


def test_xdg_config_home_is_honoured(cli, isolated_home, tmp_path):
    elsewhere = tmp_path / "xdg"
    (elsewhere / "nats" / "context").mkdir(parents=True)
    write(elsewhere / "nats" / "context" / "x.json", json.dumps({"url": "nats://xdg:4222"}))
    write(elsewhere / "nats" / "context.txt", "x")
    doc = effective(cli, env={"XDG_CONFIG_HOME": str(elsewhere)})
    assert value_and_source(doc, "servers") == (["nats://xdg:4222"], "context x")
    result = cli.run("config", "path", env={"XDG_CONFIG_HOME": str(elsewhere)})
    assert result.stdout.decode() == f"{elsewhere}/natsctl/config.yaml\n"


def test_context_add_writes_natscli_compatible_private_files(cli, isolated_home):
    result = cli.run(
        "context", "add", "prod", "--server", "nats://127.0.0.1:4222", "--user", "svc", "--password", PASSWORD,
        "--tlsca", "/etc/ca.pem", "--description", "Production", "--select",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    path = config_dir(isolated_home) / "nats" / "context" / "prod.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    data = json.loads(path.read_text())
    assert set(NATSCLI_CONTEXT) - {
        "windows_cert_store",
        "windows_cert_match_by",
        "windows_cert_match",
        "windows_ca_certs_match",
    } <= set(data)
    assert (data["url"], data["user"], data["password"], data["ca"], data["tls_first"]) == (
        "nats://127.0.0.1:4222", "svc", PASSWORD, "/etc/ca.pem", False,
    )  # fmt: skip
    assert (config_dir(isolated_home) / "nats" / "context.txt").read_text() == "prod"
    assert PASSWORD.encode() not in result.stdout + result.stderr
    again = cli.run("context", "add", "prod", "--server", "nats://x:1")
    assert again.returncode == 2
    assert (
        again.stderr.decode() == f"natsctl: error: a context named 'prod' exists ({path}); pass --force to replace it\n"
    )


def test_context_ls_show_use_rm(cli, isolated_home):
    write_context(isolated_home, "one", {**NATSCLI_CONTEXT, "url": f"nats://u:{PASSWORD}@127.0.0.1:4222"})
    write_context(isolated_home, "two", {"url": "nats://127.0.0.1:5222", "token": TOKEN, "description": "second"})
    assert cli.run("context", "use", "two").returncode == 0
    listed = json.loads(cli.run("context", "ls", "--json").stdout)
    assert [(c["name"], c["selected"], c["url"]) for c in listed] == [
        ("one", False, "nats://u:***@127.0.0.1:4222"),
        ("two", True, "nats://127.0.0.1:5222"),
    ]
    table = cli.run("context", "ls").stdout.decode()
    assert table.splitlines()[2] == "*two  nats://127.0.0.1:5222        second"
    shown = json.loads(cli.run("context", "show", "one", "-o", "json").stdout)
    assert shown["context"]["password"] == "***" and shown["context"]["url"] == "nats://u:***@127.0.0.1:4222"
    yaml_out = cli.run("context", "show", "-o", "yaml").stdout.decode()
    assert "token: '***'" in yaml_out and TOKEN not in yaml_out
    removed = cli.run("context", "rm", "two", "--json")
    assert json.loads(removed.stdout) == {
        "removed": "two", "path": str(config_dir(isolated_home) / "nats" / "context" / "two.json"), "was_selected": True,
    }  # fmt: skip
    assert (config_dir(isolated_home) / "nats" / "context.txt").read_text() == ""
    assert [c["name"] for c in json.loads(cli.run("context", "ls", "--json").stdout)] == ["one"]


def test_missing_context_is_reported(cli, isolated_home):
    result = cli.run("config", "show", "--context", "nope")
    assert result.returncode == 7
    where = config_dir(isolated_home) / "nats" / "context" / "nope.json"
    assert (
        result.stderr.decode()
        == f"natsctl: error: no context named 'nope' (looked for {where}); see 'natsctl context ls'\n"
    )


@pytest.mark.parametrize("name", ["../etc/passwd", ".hidden", "a/b"])
def test_context_names_cannot_escape_the_folder(cli_in_process, name):
    result = cli_in_process.run("config", "show", "--context", name)
    assert result.returncode == 2
    assert (
        result.stderr.decode()
        == f"natsctl: error: invalid context name {name!r}: use letters, digits, '-', '_' or '.'\n"
    )


def test_malformed_context_names_the_file_not_its_content(cli, isolated_home):
    path = write_context(isolated_home, "broken", {})
    path.write_text('{"url": "nats://x", "password": "' + PASSWORD + '" oops}')
    result = cli.run("config", "show", "--context", "broken")
    assert result.returncode == 2
    assert result.stderr.decode() == f"natsctl: error: the context file {path} is not valid JSON (line 1, column 49)\n"
    assert PASSWORD.encode() not in result.stdout + result.stderr


def test_unreadable_context_names_the_file(cli, isolated_home):
    if os.geteuid() == 0:
        path = write_context(isolated_home, "dir", {})
        path.unlink()
        path.mkdir()  # root reads any file, but not a folder as a file
        reason = "is a directory"
    else:
        path = write_context(isolated_home, "dir", {}, mode=0o000)
        reason = "permission denied"
    result = cli.run("config", "show", "--context", "dir")
    assert result.returncode == 2
    assert result.stderr.decode() == f"natsctl: error: cannot read the context file {path}: {reason}\n"


def test_malformed_config_names_the_file_not_its_content(cli, isolated_home):
    path = write_config(isolated_home, f"password: [{PASSWORD}\nserver: x\n")
    result = cli.run("config", "show")
    assert result.returncode == 2
    assert result.stderr.decode() == f"natsctl: error: the config file {path} is not valid YAML (line 2, column 7)\n"
    assert PASSWORD.encode() not in result.stdout + result.stderr
    write_config(isolated_home, "colour: blue\n")
    result = cli.run("config", "show")
    assert result.returncode == 2
    assert result.stderr.decode().startswith(
        f"natsctl: error: the config file {path} has an unknown key 'colour' (known: "
    )
    write_config(isolated_home, "contexts:\n  dev:\n    timeout: soon\n")
    result = cli.run("config", "show")
    assert (
        result.stderr.decode()
        == f"natsctl: error: the config file {path}: 'contexts.dev.timeout' must be a number, not a string\n"
    )


def test_config_show_masks_secrets(cli, isolated_home):
    write_config(isolated_home, f"password: {PASSWORD}\ntoken: {TOKEN}\nserver: nats://me:{PASSWORD}@127.0.0.1:4222\n")
    result = cli.run("config", "show", "-o", "yaml")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert PASSWORD not in out and TOKEN not in out
    doc = json.loads(cli.run("config", "show", "--json").stdout)
    assert doc["config"] == {"password": "***", "token": "***", "server": ["nats://me:***@127.0.0.1:4222"]}


def test_files_readable_by_others_get_a_warning(cli, isolated_home, tmp_path):
    ctx = write_context(isolated_home, "open", {"url": "nats://127.0.0.1:4222", "password": PASSWORD}, mode=0o644)
    cfg = write_config(isolated_home, "cluster_id: c\n", mode=0o640)
    creds = write(tmp_path / "user.creds", "x", 0o604)
    nkey = write(tmp_path / "user.nk", "x", 0o644)
    result = cli.run("config", "show", "--context", "open", "--creds", str(creds), "--nkey", str(nkey))
    assert result.returncode == 0
    assert result.stderr.decode().splitlines() == [
        f"natsctl: warning: the context file {ctx} is readable by other users (mode 0644); run: chmod 600 {ctx}",
        f"natsctl: warning: the config file {cfg} is readable by other users (mode 0640); run: chmod 600 {cfg}",
        f"natsctl: warning: the creds file {creds} is readable by other users (mode 0604); run: chmod 600 {creds}",
        f"natsctl: warning: the nkey seed file {nkey} is readable by other users (mode 0644); run: chmod 600 {nkey}",
    ]
    for path in (ctx, cfg, creds, nkey):
        path.chmod(0o600)
    quiet = cli.run("config", "show", "--context", "open", "--creds", str(creds), "--nkey", str(nkey))
    assert quiet.stderr == b""


def test_tls_insecure_gets_a_warning(cli):
    result = cli.run("config", "show", "--tls-insecure")
    assert result.returncode == 0
    assert result.stderr.decode() == (
        "natsctl: warning: TLS certificate verification is off (--tls-insecure): the server is not authenticated\n"
    )


def test_monitor_ca_flag_and_env_carry_to_settings(cli, isolated_home):
    write_context(isolated_home, "tls", {"url": "tls://127.0.0.1:4222", "ca": "/ctx/ca.pem"})
    doc = effective(cli, "--context", "tls", "--monitor", "https://127.0.0.1:8222", "--monitor-ca", "/flag/mon-ca.pem")
    assert value_and_source(doc, "monitor_ca") == ("/flag/mon-ca.pem", "flag")
    assert value_and_source(doc, "monitor_urls") == (["https://127.0.0.1:8222"], "flag")
    doc = effective(cli, "--context", "tls")
    assert value_and_source(doc, "monitor_ca") == ("/ctx/ca.pem", "tls_ca (context tls)")
