"""Write docs/cli.md: the ``--help`` of every natsctl command, as a user sees it.

    python scripts/gen_cli_docs.py           # rewrite docs/cli.md
    python scripts/gen_cli_docs.py --check   # exit 1 when docs/cli.md is not current

The help is produced by natsctl's own entry point (``natsctl.cli.main.main``) in-process, with Typer's
``CliRunner`` capturing it at 80 columns and an environment without NATS_* variables or user files, so
the page is the same on every machine. tests/test_docs.py fails when the committed page is stale.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "cli.md"
COMMAND = "python scripts/gen_cli_docs.py"

HEADER = f"""\
# natsctl command reference

Generated from `natsctl --help` and every command's `--help` by `{COMMAND}`; do not edit by hand
(`tests/test_docs.py` fails when this page is out of date). The README shows the commands at work;
exit codes are listed there too.
"""


def command_paths() -> list[list[str]]:
    """Every command and group, depth first, in the order ``--help`` lists them."""
    import typer.main

    from natsctl.cli.main import build_app

    def walk(command, path: list[str]):
        yield path
        for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
            if not getattr(sub, "hidden", False):
                yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(build_app()), []))


def help_text(path: list[str]) -> str:
    from typer.testing import CliRunner

    from natsctl.cli.main import main

    # No NATS_* settings, and HOME/XDG pointing nowhere real: help must not depend on the user's setup.
    env: dict[str, str | None] = {key: None for key in os.environ if key.startswith("NATS")}
    env.update(HOME="/nonexistent", XDG_CONFIG_HOME="/nonexistent/.config", XDG_DATA_HOME="/nonexistent/.local/share")
    with CliRunner().isolation(env=env) as (out, err, _):
        try:
            main([*path, "--help"])
            code = 0
        except SystemExit as exc:
            code = exc.code
        sys.stdout.flush()
        sys.stderr.flush()
        text, problems = out.getvalue().decode(), err.getvalue().decode()
    if code not in (0, None) or problems:
        raise RuntimeError(f"natsctl {' '.join(path)} --help failed (exit {code}): {problems}")
    return text


def render() -> str:
    """The whole page."""
    paths = command_paths()
    parts = [HEADER, "\n## Commands\n\n"]
    for path in paths[1:]:
        name = " ".join(path)
        parts.append(f"{'  ' * (len(path) - 1)}- [`natsctl {name}`](#{anchor(path)})\n")
    for path in paths:
        title = " ".join(["natsctl", *path])
        parts.append(f"\n## {title}\n\n```text\n{help_text(path).rstrip()}\n```\n")
    return "".join(parts)


def anchor(path: list[str]) -> str:
    """GitHub's heading anchor for ``## natsctl <path>``."""
    return "-".join(["natsctl", *path])


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))  # natsctl from this checkout, installed or not
    text = render()
    if "--check" in argv:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"docs/cli.md is not current: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
