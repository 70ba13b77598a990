"""Layering (docs/ARCHITECTURE.md): rich is imported only inside natsctl/cli/render/."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "natsctl"
RENDER = PACKAGE / "cli" / "render"
RICH_IMPORT = re.compile(r"^\s*(import rich\b|from rich(\.| )\S*\s*import\b)")


def test_rich_is_imported_only_in_cli_render():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if RENDER in path.parents:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if RICH_IMPORT.match(line) or re.search(r"""(import_module|__import__)\(\s*["']rich""", line):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert not offenders, "rich imported outside natsctl/cli/render/:\n" + "\n".join(offenders)


def test_the_check_sees_the_import_forms():
    for line in ("import rich", "    from rich.table import Table", "from rich import box", "import rich.console as c"):
        assert RICH_IMPORT.match(line), line
    for line in ("# rich is imported inside the functions", '"""httpx and rich are imported"""', "import richer"):
        assert not RICH_IMPORT.match(line), line
