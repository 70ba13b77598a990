"""Contributor docs stay true: docs/cli.md is what scripts/gen_cli_docs.py makes from the current help."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_current():
    generator = load_generator()
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == generator.render(), f"docs/cli.md is not current: run {generator.COMMAND}"


def test_cli_reference_covers_every_command():
    generator = load_generator()
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    paths = generator.command_paths()
    assert len(paths) > 20
    for path in paths:
        assert f"\n## {' '.join(['natsctl', *path])}\n" in text
