"""Build a running pipeline from a ``ShipperConfig`` (the only place that knows every stage)."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from shipper.config import (
    ConsoleOutputConfig,
    ElasticsearchOutputConfig,
    FileInputConfig,
    FileOutputConfig,
    LogtoApiInputConfig,
    PostgresInputConfig,
    ShipperConfig,
    WebhookInputConfig,
)
from shipper.deadletter import DeadLetterFile
from shipper.detect.stage import DetectStage
from shipper.enrich import NAMES_ROOM, Enricher
from shipper.errors import StateError, postgres_driver
from shipper.namesources import DatabaseNames, ManagementApiNames, NameSource
from shipper.normalize import Normalizer
from shipper.normalize.pool import NormalizerPool, default_workers
from shipper.pipeline.checkpoint import CheckpointStore
from shipper.pipeline.progress import Progress
from shipper.pipeline.runner import BatchLimits, Runner
from shipper.sinks.base import Sink
from shipper.sinks.local import ConsoleSink, FileSink
from shipper.sources import Source
from shipper.sources.file import FileSource
from shipper.timespec import parse_duration
from shipper.wake import Wake

if TYPE_CHECKING:
    from shipper.logto_api import ManagementApi

log = logging.getLogger(__name__)


def lock_state_dir(state_dir: Path) -> IO[str]:
    """Hold an exclusive lock on the state dir for the life of the process."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fh = open(state_dir / "lock", "a+")  # noqa: SIM115 - held until exit
    except OSError as exc:
        raise StateError(f"cannot use state dir {state_dir}: {exc.strerror}") from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise StateError(
            f"another logto-shipper (pid {holder}) is using state dir {state_dir}; "
            "stop it or give this one its own [state] dir"
        ) from None
    try:  # the pid is for the message above; the lock holds without it (a full disk)
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
    except OSError as exc:
        log.warning("cannot write the pid to %s: %s", state_dir / "lock", exc.strerror)
    return fh


def build_sink(cfg: ShipperConfig, store: CheckpointStore) -> Sink:
    out = cfg.output
    if isinstance(out, FileOutputConfig):
        committed = store.outputs.get("sink")
        return FileSink(out.path, committed if isinstance(committed, int) else None, dedupe=store.corrupt)
    if isinstance(out, ConsoleOutputConfig):
        return ConsoleSink()
    if isinstance(out, ElasticsearchOutputConfig):
        from shipper.sinks.elasticsearch.sink import ElasticsearchSink

        return ElasticsearchSink.from_config(out, cfg.index, cfg.state.dir)
    raise AssertionError(f"unknown output {out!r}")


def build_sources(cfg: ShipperConfig, store: CheckpointStore, wake: Wake, once: bool = False) -> list[Source]:
    """One source per input; ``once`` (``run --once``): webhook inputs ship their spool only."""
    sources: list[Source] = []
    forget = parse_duration(cfg.state.forget_after)
    for i, inp in enumerate(cfg.inputs):
        if isinstance(inp, FileInputConfig):
            sources.append(FileSource(inp, store, f"file{i}", forget_after=forget, notify=wake))
        elif isinstance(inp, LogtoApiInputConfig):
            from shipper.sources.logto_api import LogtoApiSource

            sources.append(LogtoApiSource(inp, store, f"api{i}", wake))
        elif isinstance(inp, WebhookInputConfig):
            from shipper.sources.webhook import WebhookSource

            sources.append(WebhookSource(inp, store, cfg.state.dir, f"webhook{i}", wake, receive=not once))
        else:
            try:
                from shipper.sources.postgres import PostgresSource
            except ImportError:
                raise postgres_driver() from None
            names = reads_names(cfg, inp)
            sources.append(PostgresSource(inp, store, f"pg{i}", names, cfg.enrich.include_email))
    return sources


def reads_names(cfg: ShipperConfig, inp: PostgresInputConfig) -> bool:
    """Does this postgres input read the names with its rows? When the names come from its own
    database (``[enrich]`` on, no other database, no static map to take first): one read, no
    cache, names exact at read time. Otherwise the enricher adds them from its cache."""
    e = cfg.enrich
    own = inp.dsn.get_secret_value() if inp.dsn is not None else None
    same_db = e.dsn is None or e.dsn.get_secret_value() == own
    return e.enabled and same_db and not e.applications


def line_limit(inp: object) -> int:
    """The longest line an input hands over (longer ones are dead-lettered by the runner)."""
    if isinstance(inp, FileInputConfig | WebhookInputConfig):
        return inp.max_line_bytes
    if isinstance(inp, PostgresInputConfig | LogtoApiInputConfig):
        return inp.max_row_bytes
    raise AssertionError(f"unknown input {inp!r}")


def build_runner(cfg: ShipperConfig, once: bool = False, tick: Callable[[], None] | None = None) -> Runner:
    """The pipeline ``cfg`` describes; ``once``: for ``run --once``; ``tick``: see ``Runner``."""
    store = CheckpointStore(cfg.state.dir, cfg.state.checkpoint_interval)
    wake = Wake()
    sink = build_sink(cfg, store)
    limits, drain = BatchLimits(), 30.0
    if isinstance(cfg.output, ElasticsearchOutputConfig):
        o = cfg.output
        limits = BatchLimits(o.batch_max_docs, o.batch_max_bytes, o.batch_max_wait, o.flush_when_idle)
        drain = o.drain_timeout
    deadletter = DeadLetterFile(cfg.state.dir / "dead-letter" / "records.jsonl")
    rules, max_line = cfg.mask.rules(), max((line_limit(i) for i in cfg.inputs), default=1 << 20)
    enricher = build_enricher(cfg)
    # Names (the enricher's, or read with postgres rows) make lines longer than the inputs hold
    # them to: the normalizer takes that much more; dead letters name the inputs' limit.
    room = max_line + (NAMES_ROOM if cfg.enrich.enabled else 0)
    workers = cfg.pipeline.workers
    if workers == "auto":
        workers = default_workers()
    unacked = Runner.unacked_bound(limits, sink.max_in_flight)
    stages = [build_detection(cfg, store, sink, unacked)] if cfg.detect.enabled else []
    pool = NormalizerPool(workers, rules, room, sink.framer, detect=bool(stages)) if workers else None
    runner = Runner(
        build_sources(cfg, store, wake, once),
        sink,
        Normalizer(rules, room),
        store,
        deadletter,
        limits,
        drain,
        wake,
        pool,
        tick=tick,
        enricher=enricher,
        progress=Progress(cfg.state.dir, cfg.pipeline.progress_interval),
        line_limit=max_line,
        stages=stages,
    )
    return runner


def build_detection(cfg: ShipperConfig, store: CheckpointStore, sink: Sink, unacked: int) -> DetectStage:
    """The detections of ``[detect]``: alerts into the alerts index (an Elasticsearch output)
    and to the notifiers, state written with each checkpoint; ``unacked``: how many records
    the runner may read past the checkpoint (the event ids the stage remembers)."""
    from shipper.detect.deliver import Delivery, Target, WebhookNotifier
    from shipper.detect.rules import Detector, rules
    from shipper.detect.stage import SEEN_KEEP, DetectStage

    d = cfg.detect
    index: Target | None = None
    index_of: Callable[[int], str] = lambda ms: ""  # noqa: E731 - no index: log lines and notifiers only
    if isinstance(cfg.output, ElasticsearchOutputConfig):
        from shipper.sinks.elasticsearch.alerts import ElasticsearchAlerts

        es = ElasticsearchAlerts(cfg.output, cfg.index, lambda: getattr(sink, "set_up", True))
        index, index_of = es, es.namer
    notifiers: list[Target] = []
    for n in d.notify:
        assert n.url is not None  # the model requires it
        secret = n.secret.get_secret_value().encode() if n.secret else None
        verify: bool | str = str(n.ca_file) if n.ca_file and n.verify_certs else n.verify_certs
        notifiers.append(WebhookNotifier(n.url.get_secret_value(), secret, n.timeout, verify))
    delivery = Delivery(
        index,
        notifiers,
        max_attempts=min((n.max_attempts for n in d.notify), default=10),
        journal=cfg.state.dir / "alerts-delivered.log",
    )
    response = None
    if d.respond.suspend_user:
        from shipper.detect.respond import Response, Suspender

        response = Response(set(d.respond.suspend_user), set(d.respond.allow), d.respond.dry_run)
        api = response_api(cfg)
        if api is not None and not d.respond.dry_run:
            notifiers.append(Suspender(api, delivery.add))
    stage = DetectStage(
        Detector(rules(d.settings()), d.max_keys),
        delivery,
        index_of,
        cfg.state.dir / "detect.json",
        respond=response.plan if response is not None else None,
        seen_keep=max(SEEN_KEEP, unacked),
    )
    store.before_write.append(stage.save)
    delivery.start()
    return stage


def response_api(cfg: ShipperConfig) -> ManagementApi | None:
    """The Management API credentials responses use: ``[detect.respond.management_api]``, else
    the logto-api input's M2M app, else ``[enrich.management_api]``."""
    from shipper.logto_api import ManagementApi

    api = cfg.detect.respond.management_api or next(
        (i for i in cfg.inputs if isinstance(i, LogtoApiInputConfig)), cfg.enrich.management_api
    )
    if api is None or api.app_secret is None:
        return None
    return ManagementApi(api.endpoint, api.app_id, api.app_secret.get_secret_value(), api.resource)


def build_enricher(cfg: ShipperConfig, start: bool = True) -> Enricher | None:
    e = cfg.enrich
    if not e.enabled:
        return None
    dsn = e.dsn or next((i.dsn for i in cfg.inputs if isinstance(i, PostgresInputConfig) and i.dsn), None)
    sources: list[NameSource] = [DatabaseNames(dsn.get_secret_value())] if dsn else []
    api = e.management_api or next((i for i in cfg.inputs if isinstance(i, LogtoApiInputConfig)), None)
    if api is not None and api.app_secret is not None:  # default: the logto-api input's M2M app
        sources.append(
            ManagementApiNames(api.endpoint, api.app_id, api.app_secret.get_secret_value(), api.resource)
        )
    hooks = any(isinstance(i, WebhookInputConfig) for i in cfg.inputs)
    if not sources and not e.applications and not hooks:
        return None  # nothing to enrich from: documents keep ids only
    # With a webhook input alone, names come from the deliveries (their user and application).
    enricher = Enricher(sources, e.applications, e.include_email, parse_duration(e.ttl), e.max_entries)
    if start:
        enricher.start()
    return enricher
