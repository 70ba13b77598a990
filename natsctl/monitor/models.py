"""What the monitoring commands return: plain dataclasses, also the shape of their ``--json`` output.

One set of classes for both server generations (nats-server with or without JetStream, and NATS
Streaming) so scripts read the same keys whatever runs behind the URL. Fields a server does not report
(old versions, NATS Streaming) stay ``None`` rather than a made-up zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KIND_NATS = "nats"  # nats-server without JetStream
KIND_JETSTREAM = "jetstream"
KIND_STAN = "stan"  # NATS Streaming


@dataclass(slots=True)
class JetStreamUsage:
    memory: int = 0
    storage: int = 0
    max_memory: int | None = None
    max_storage: int | None = None
    streams: int | None = None
    consumers: int | None = None
    messages: int | None = None
    bytes: int | None = None
    api_total: int = 0
    api_errors: int = 0
    store_dir: str | None = None


@dataclass(slots=True)
class StreamingInfo:
    """What ``/streaming/serverz`` and ``/streaming/storez`` say about a NATS Streaming server."""

    cluster_id: str = ""
    server_id: str = ""
    version: str = ""
    state: str = ""
    store_type: str | None = None
    channels: int = 0
    clients: int = 0
    subscriptions: int = 0
    total_msgs: int = 0
    total_bytes: int = 0
    max_channels: int | None = None
    max_msgs: int | None = None
    max_bytes: int | None = None
    max_age_seconds: float | None = None
    max_subscriptions: int | None = None
    max_inactivity_seconds: float | None = None


@dataclass(slots=True)
class ServerInfo:
    monitor_url: str  # any password or token in it masked (***)
    kind: str  # "nats", "jetstream" or "stan"
    server_id: str = ""
    server_name: str = ""
    version: str = ""
    go: str = ""
    host: str = ""
    port: int | None = None
    start: str | None = None
    uptime: str = ""
    connections: int = 0
    total_connections: int | None = None
    subscriptions: int = 0
    routes: int = 0
    in_msgs: int = 0
    out_msgs: int = 0
    in_bytes: int = 0
    out_bytes: int = 0
    slow_consumers: int = 0
    mem: int = 0
    cpu: float = 0.0
    cores: int | None = None
    cluster_name: str | None = None
    cluster_urls: list[str] = field(default_factory=list)
    jetstream: JetStreamUsage | None = None
    streaming: StreamingInfo | None = None


@dataclass(slots=True)
class CoreSubscription:
    """A core NATS subscription of one client connection (no persistence, so no lag)."""

    subject: str
    queue: str = ""
    sid: str = ""
    msgs: int = 0


@dataclass(slots=True)
class Subscription:
    """A JetStream consumer or a NATS Streaming subscription, with how far it lags behind its channel."""

    # The channel as users name it: the subject(s) a consumer reads (its filter, else its stream's
    # subjects); the NATS Streaming channel; the subject of a core subscription.
    channel: str
    stream: str = field(default="", kw_only=True)  # JetStream: the stream beside it; "" elsewhere
    kind: str  # "consumer" (JetStream), "subscription" (NATS Streaming) or "core" (plain NATS)
    name: str = ""  # durable / consumer name; "" for a plain subscription
    queue: str = ""  # queue group as the server names it (NATS Streaming durable queue: "durable:queue")
    client_id: str = ""
    durable: bool = False
    offline: bool = False
    stalled: bool | None = None
    lag: int | None = None  # messages in the channel not yet delivered
    unacked: int | None = None  # delivered, not acknowledged yet
    redelivered: int | None = None
    waiting: int | None = None  # pull requests waiting (JetStream)
    delivered_seq: int | None = None  # last channel sequence delivered
    ack_floor_seq: int | None = None
    last_active: str | None = None
    ack_wait_seconds: float | None = None
    max_inflight: int | None = None
    filter_subject: str = ""
    account: str = ""
    cid: int | None = None  # core subscriptions: the connection holding it


@dataclass(slots=True)
class Channel:
    """A JetStream stream or a NATS Streaming channel."""

    # The channel as users name it: the stream's subject(s) (JetStream) or the channel's name (NATS Streaming).
    channel: str = field(default="", kw_only=True)
    stream: str = field(default="", kw_only=True)  # JetStream: the stream's name; "" on NATS Streaming
    name: str
    kind: str  # "stream" or "channel"
    subjects: list[str] = field(default_factory=list)
    messages: int = 0
    bytes: int = 0
    first_seq: int = 0
    last_seq: int = 0
    first_time: str | None = None
    last_time: str | None = None
    consumers: int = 0  # consumers / subscriptions on it
    storage: str | None = None
    replicas: int | None = None
    account: str = ""
    created: str | None = None
    subscriptions: list[Subscription] = field(default_factory=list)


@dataclass(slots=True)
class Connection:
    """One client connection from ``/connz``."""

    cid: int
    name: str = ""
    ip: str = ""
    port: int | None = None
    account: str = ""
    user: str = ""
    lang: str = ""
    version: str = ""
    subscriptions: int = 0
    pending_bytes: int = 0
    in_msgs: int = 0
    out_msgs: int = 0
    in_bytes: int = 0
    out_bytes: int = 0
    rtt: str = ""
    uptime: str = ""
    idle: str = ""
    start: str | None = None
    stop: str | None = None
    reason: str = ""
    tls_version: str = ""
    subscriptions_list: list[CoreSubscription] = field(default_factory=list)


@dataclass(slots=True)
class StreamingClient:
    """One NATS Streaming client from ``/streaming/clientsz?subs=1``."""

    id: str
    hb_inbox: str = ""
    subs_count: int = 0
    subscriptions: list[Subscription] = field(default_factory=list)


@dataclass(slots=True)
class Route:
    rid: int
    remote_id: str = ""
    remote_name: str = ""
    ip: str = ""
    port: int | None = None
    configured: bool = False  # listed in this server's routes (not learned by gossip)
    solicited: bool = False  # this server dialed it
    account: str = ""  # a route dedicated to one account ("$SYS"), "" for the pooled routes
    subscriptions: int = 0
    pending_size: int = 0
    in_msgs: int = 0
    out_msgs: int = 0
    in_bytes: int = 0
    out_bytes: int = 0
    rtt: str = ""
    uptime: str = ""


@dataclass(slots=True)
class RouteReport:
    server_id: str = ""
    server_name: str = ""
    cluster_name: str | None = None
    num_routes: int = 0
    routes: list[Route] = field(default_factory=list)


@dataclass(slots=True)
class Health:
    monitor_url: str  # any password or token in it masked (***)
    healthy: bool
    status: str
    error: str = ""
    kind: str = ""
    streaming_state: str | None = None
