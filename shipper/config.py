"""The configuration's models, validated by pydantic at the boundary: what each key means,
its default and its limits. Reading a file (TOML, ``${VAR}``, ``*_file`` secrets, errors that
name the key) is ``shipper.configfile``."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from shipper.normalize.mask import DEFAULT_RULES, MaskRules
from shipper.redact import redact_url, split_userinfo
from shipper.timespec import parse_duration

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/logto-shipper/shipper.toml")


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[str, AfterValidator(_check_duration)]


class _Model(BaseModel):
    # Unknown keys are errors: a typo such as ``api_keyfile`` must not be ignored silently.
    # TOML has ``inf`` and ``nan``: no timeout, backoff or interval may be either.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def check_host_port(text: str) -> str:
    """``host:port`` (``[v6]:port``) with a port in 1-65535, for listen addresses."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not host:port with a port in 1-65535 (e.g. 127.0.0.1:9464)")
    return text


def is_loopback(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_es_url(url: str) -> str:
    """An Elasticsearch node URL as the client needs it: http(s), a host, a port (https: 443)."""
    from urllib.parse import urlsplit

    shown = redact_url(url)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{shown!r} has a port outside 1-65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{shown!r} is not a URL with scheme, host and port (e.g. http://{url}"
            + ("" if ":" in url else ":9200")
            + ")"
        )
    if port is None and parts.scheme == "http":
        raise ValueError(f"{shown!r} has no port (Elasticsearch listens on 9200: {shown}:9200)")
    if port == 0:
        raise ValueError(f"{shown!r} has a port outside 1-65535")
    return url


class StateConfig(_Model):
    dir: Path = Path("/var/lib/logto-shipper")
    checkpoint_interval: float = Field(1.0, gt=0, description="seconds between checkpoint writes")
    forget_after: Duration = Field("7d", description="drop registry entries of files gone this long")


class FileInputConfig(_Model):
    type: Literal["file"]
    paths: list[str] = Field(min_length=1)
    exclude: list[str] = []
    start_at: Literal["beginning", "end"] = "beginning"
    max_line_bytes: int = Field(1 << 20, ge=1024)
    scan_interval: float = Field(5.0, gt=0)
    close_deleted_after: Duration = "5m"
    idle_eof_after: Duration = Field("10s", description="emit a rotated file's unterminated line")
    fingerprint_bytes: int = Field(1024, ge=16, le=1 << 20)


class PostgresInputConfig(_Model):
    type: Literal["postgres"]
    dsn: SecretStr | None = None
    dsn_file: Path | None = None
    tenants: list[str] = ["default"]
    poll_interval: float = Field(1.0, gt=0)
    batch_size: int = Field(1000, ge=1, le=100_000)
    overlap: Duration = "5m"
    since: str | None = None
    statement_timeout: Duration = "30s"
    max_row_bytes: int = Field(
        8 << 20, ge=1024, description="longer rows are dead-lettered (first bytes kept)"
    )

    @field_validator("dsn")
    @classmethod
    def _dsn_parses(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        try:
            from psycopg.conninfo import conninfo_to_dict
        except ImportError:
            return v  # the input reports the missing driver itself, with the extra to install
        try:
            conninfo_to_dict(v.get_secret_value())
        except Exception:
            raise ValueError(
                "not a valid PostgreSQL connection string (use postgresql://USER@HOST:5432/DB "
                "or key=value pairs); its text is not shown, it may hold a password"
            ) from None
        return v


class LogtoApiInputConfig(_Model):
    """Logto's audit log through the Management API (Logto Cloud; see README "Logto Cloud")."""

    type: Literal["logto-api"]
    endpoint: str = Field(pattern=r"^https?://[^/@\s]+", description="the tenant's URL")
    resource: str = Field(
        "https://default.logto.app/api",
        description="the Management API resource: https://TENANT.logto.app/api on Logto Cloud",
    )
    app_id: str = Field(min_length=1)
    app_secret: SecretStr | None = None
    app_secret_file: Path | None = None
    poll_interval: float = Field(10.0, ge=0.5, description="seconds between polls once caught up")
    since: str = Field("14d", description="first start: how far back (a duration or an ISO time)")
    safety_lag: Duration = Field("2s", description="rows newer than this are left to the next poll")
    retention: Duration | None = Field(
        "14d", description="the tenant's log retention (Cloud: 3d Free, 14d Pro); warns before it"
    )
    max_row_bytes: int = Field(8 << 20, ge=1024)

    @model_validator(mode="after")
    def _secret_given(self) -> LogtoApiInputConfig:
        if self.app_secret is None:
            raise ValueError("logto-api input needs app_secret_file (or app_secret)")
        return self


class WebhookInputConfig(_Model):
    """A receiver for Logto's signed webhooks (see README "Webhooks")."""

    type: Literal["webhook"]
    listen: Annotated[str, AfterValidator(check_host_port)] = "127.0.0.1:8786"
    path: str = Field("/logto", pattern=r"^/[A-Za-z0-9._~/-]*$")
    signing_key: SecretStr | None = None
    signing_key_file: Path | None = None
    require_signature: bool = True
    max_body_bytes: int = Field(1 << 20, ge=1024, le=64 << 20)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    @model_validator(mode="after")
    def _key_given(self) -> WebhookInputConfig:
        if self.require_signature and self.signing_key is None:
            raise ValueError(
                "webhook input needs signing_key_file (the hook's signing key from Logto's console), "
                "or require_signature = false"
            )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("webhook input: set both tls_cert_file and tls_key_file, or neither")
        return self

    @property
    def max_line_bytes(self) -> int:
        return self.max_body_bytes + 1024  # the body and the few fields around it in the spool


InputConfig = Annotated[
    FileInputConfig | PostgresInputConfig | LogtoApiInputConfig | WebhookInputConfig,
    Field(discriminator="type"),
]


class ElasticsearchOutputConfig(_Model):
    type: Literal["elasticsearch"]
    hosts: list[str] = Field(["http://localhost:9200"], min_length=1)
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    verify_certs: bool = True
    request_timeout: float = Field(30.0, gt=0)
    batch_max_docs: int = Field(2000, ge=1)
    batch_max_bytes: int = Field(5 << 20, ge=1024)
    batch_max_wait: float = Field(1.0, gt=0)
    flush_when_idle: bool = Field(
        True,
        description="send a batch as soon as the inputs have nothing more to read (false: batch_max_wait)",
    )
    max_in_flight: int = Field(2, ge=1, le=64)
    gzip: bool = True
    gzip_level: int = Field(
        1, ge=1, le=9, description="1-3: ISA-L, fast; 4-9: zlib, fewer bytes for much more CPU"
    )
    setup_on_start: bool = True
    retry_initial_backoff: float = Field(0.1, gt=0)
    retry_max_backoff: float = Field(30.0, gt=0)
    drain_timeout: float = Field(30.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_urls(cls, data: Any) -> Any:
        """``https://user:pass@host:9200`` becomes the host plus username/password, so the
        password lives in one SecretStr and no URL that is printed can carry it."""
        if not isinstance(data, dict) or not isinstance(data.get("hosts"), list):
            return data
        hosts = []
        for i, h in enumerate(data["hosts"]):
            if not isinstance(h, str):
                hosts.append(h)
                continue
            bare, user, password = split_userinfo(h)
            if user is not None:
                if data.get("username") or data.get("api_key") or data.get("password"):
                    raise ValueError(f"hosts[{i}] carries credentials and so does the output; use one")
                data = {**data, "username": user}
                if password is not None:
                    data["password"] = password
            hosts.append(bare)
        return {**data, "hosts": hosts}

    @field_validator("hosts")
    @classmethod
    def _hosts_are_urls(cls, v: list[str]) -> list[str]:
        for i, h in enumerate(v):
            try:
                check_es_url(h)
            except ValueError as exc:
                raise ValueError(f"hosts[{i}]: {exc}") from None
        return v


class FileOutputConfig(_Model):
    type: Literal["file"]
    path: Path


class ConsoleOutputConfig(_Model):
    type: Literal["console"]


OutputConfig = Annotated[
    ElasticsearchOutputConfig | FileOutputConfig | ConsoleOutputConfig,
    Field(discriminator="type"),
]


class IndexConfig(_Model):
    prefix: str = Field("logto-audit", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    namespace: str = Field("default", pattern=r"^[a-z0-9][a-z0-9_]*$")
    retention: Duration = "90d"
    granularity: Literal["day", "week", "month"] = "day"
    shards: int = Field(1, ge=1)
    replicas: int = Field(1, ge=0)
    refresh_interval: Duration = Field(
        "5s", description="how soon shipped events are searchable (index.refresh_interval)"
    )
    warm_after: Duration | None = None
    ship_expired: bool = Field(
        False, description="ship events whose day is past the retention too (ILM deletes them at once)"
    )


class MaskConfig(_Model):
    """Extra secret-key rules. The built-in rules always apply and cannot be removed."""

    extra_equal: list[str] = []
    extra_suffix: list[str] = []
    extra_contain: list[str] = []
    extra_params: list[str] = []

    def rules(self) -> MaskRules:
        return DEFAULT_RULES.extended(
            self.extra_equal, self.extra_suffix, self.extra_contain, self.extra_params
        )


class ManagementApiConfig(_Model):
    endpoint: str = Field(pattern=r"^https?://")
    app_id: str
    app_secret: SecretStr | None = None
    app_secret_file: Path | None = None
    resource: str = "https://default.logto.app/api"


class EnrichConfig(_Model):
    """Names for application and user ids (see README "Names")."""

    enabled: bool = True
    dsn: SecretStr | None = None  # Logto's database; default: the postgres input's dsn
    dsn_file: Path | None = None
    include_email: bool = False  # personal data: off unless asked for
    ttl: Duration = "10m"
    max_entries: int = Field(100_000, ge=100)
    applications: dict[str, str] = {}  # static id -> name, for file-only setups
    management_api: ManagementApiConfig | None = None


class MetricsConfig(_Model):
    listen: Annotated[str, AfterValidator(check_host_port)] | None = Field(
        None,
        pattern=r"^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$",
        description="host:port of the Prometheus endpoint; off when unset",
    )


class PipelineConfig(_Model):
    workers: Annotated[int, Field(ge=0, le=64)] | Literal["auto"] = Field(
        "auto",
        description="normalizer processes; 0 normalizes in the main process; auto: one per CPU "
        "(none on a single CPU).",
    )
    progress_interval: float = Field(
        30.0, ge=0, description="seconds between INFO progress lines while shipping; 0: none"
    )


def _known_rule(name: str) -> str:
    from shipper.detect.rules import RULE_IDS

    if name not in RULE_IDS:
        raise ValueError(f"{name!r} is not a detection rule (one of: {', '.join(RULE_IDS)})")
    return name


RuleName = Annotated[str, AfterValidator(_known_rule)]


class RuleConfig(_Model):
    """A built-in rule's switch, threshold and window (unset: the rule's default)."""

    enabled: bool = True
    threshold: int | None = Field(None, ge=1)
    window: Duration | None = None


class NotifyConfig(_Model):
    """Where alerts are told: a webhook that gets ``{"text": ..., "alert": {...}}``."""

    type: Literal["webhook"]
    # A secret: chat webhooks (Slack's, Teams') carry their token in the URL. Never logged.
    url: SecretStr | None = None
    url_file: Path | None = None
    secret: SecretStr | None = None  # HMAC-SHA256 key of the x-logto-shipper-signature-sha-256 header
    secret_file: Path | None = None
    timeout: float = Field(10.0, gt=0)
    max_attempts: int = Field(10, ge=1, description="tries before a notification is given up (logged)")
    ca_file: Path | None = None
    verify_certs: bool = True

    @model_validator(mode="after")
    def _http_url(self) -> NotifyConfig:
        from urllib.parse import urlsplit

        if self.url is None:
            raise ValueError("webhook notifier needs url_file (or url)")
        parts = urlsplit(self.url.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "url: not an http(s) URL with a host (its text is not shown: it may hold a token)"
            )
        return self


class RespondConfig(_Model):
    """What is done about alerts (opt-in): suspend the user through Logto's Management API."""

    suspend_user: list[RuleName] = []
    dry_run: bool = True  # log and record what would be done, do nothing
    allow: list[str] = Field([], description="user ids never suspended (admins, service accounts)")
    management_api: ManagementApiConfig | None = None  # default: the logto-api input's M2M app


class DetectConfig(_Model):
    """Detections on the normalized stream (see README "Detections")."""

    enabled: bool = True
    max_keys: int = Field(100_000, ge=100, description="entities tracked per rule (least recently seen go)")
    rules: dict[RuleName, RuleConfig] = {}
    notify: list[NotifyConfig] = []
    respond: RespondConfig = RespondConfig()

    def settings(self) -> dict[str, Any]:
        from shipper.detect.rules import Setting

        return {
            name: Setting(r.enabled, r.threshold, int(parse_duration(r.window) * 1000) if r.window else None)
            for name, r in self.rules.items()
        }


class ShipperConfig(_Model):
    state: StateConfig = StateConfig()
    pipeline: PipelineConfig = PipelineConfig()
    metrics: MetricsConfig = MetricsConfig()
    enrich: EnrichConfig = EnrichConfig()
    inputs: list[InputConfig] = Field(min_length=1)
    output: OutputConfig = ConsoleOutputConfig(type="console")
    index: IndexConfig = IndexConfig()
    mask: MaskConfig = MaskConfig()
    detect: DetectConfig = DetectConfig()

    @model_validator(mode="after")
    def _one_secret_source(self) -> ShipperConfig:
        out = self.output
        if isinstance(out, ElasticsearchOutputConfig):
            if out.api_key and (out.username or out.password):
                raise ValueError("output: set either api_key or username/password, not both")
            if out.password and not out.username:
                raise ValueError("output: password given without username")
        r = self.detect.respond
        if r.suspend_user and not r.dry_run:
            creds = r.management_api or self.enrich.management_api
            if creds is None and not any(isinstance(i, LogtoApiInputConfig) for i in self.inputs):
                raise ValueError(
                    "detect.respond: suspend_user with dry_run = false needs Management API credentials "
                    "([detect.respond.management_api], or a logto-api input)"
                )
        return self

    def warnings(self) -> list[str]:
        """Risky but valid settings, logged at load (never fatal)."""
        out: list[str] = []
        es = self.output
        if isinstance(es, ElasticsearchOutputConfig) and es.username:
            plain = [h for h in es.hosts if h.startswith("http://")]
            if plain:
                out.append(
                    f"output: basic auth over plain http to {', '.join(plain)}: the password crosses "
                    "the network unencrypted (use https)"
                )
        for i, inp in enumerate(self.inputs):
            if isinstance(inp, WebhookInputConfig) and not is_loopback(inp.listen) and not inp.tls_cert_file:
                out.append(
                    f"inputs[{i}].listen = {inp.listen!r} takes plain http from other hosts: put a TLS "
                    "reverse proxy in front or set tls_cert_file/tls_key_file"
                )
        if self.metrics.listen and not is_loopback(self.metrics.listen):
            out.append(
                f"metrics.listen = {self.metrics.listen!r} is reachable from other hosts "
                "(no authentication): bind it to 127.0.0.1 unless a firewall guards it"
            )
        return out
