"""The controller's configuration: one YAML file, validated whole before anything starts.

Relative paths are resolved against the file's directory, so an example directory can be
run from anywhere. An unknown key, a missing file, a bad rule, policy or runbook refuses the
start with the place named; nothing starts half-configured. See docs/configuration.md.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Annotated, Literal

import pydantic

from selfheal.detection import registry
from selfheal.domain.errors import ConfigError, SourceLocation
from selfheal.formats import durations, sourced_yaml, text_files
from selfheal.store import audit_signing
from selfheal.telemetry import promql

Duration = Annotated[float, pydantic.BeforeValidator(durations.parse_duration)]


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class TwinSettings(_Strict):
    """Run the built-in twin in this process (the embedded default)."""

    scenario: str = "flash-sale"
    speed: float = pydantic.Field(default=20.0, gt=0)


class ClusterSettings(_Strict):
    """The Kubernetes API to act on: a kubeconfig, or the pod's own service account.

    With neither, the built-in twin (`twin`) is the cluster.
    """

    kubeconfig: Path | None = None
    # In a pod: the API server from KUBERNETES_SERVICE_HOST/PORT, the service account's
    # token (re-read when it rotates), CA and namespace from the files Kubernetes mounts.
    in_cluster: bool = False

    @pydantic.model_validator(mode="after")
    def _one_way_in(self) -> ClusterSettings:
        if self.in_cluster and self.kubeconfig is not None:
            raise ValueError(
                "set `kubeconfig` or `in_cluster: true`, not both: in a pod, in_cluster "
                "uses the pod's service account"
            )
        return self


class TargetSettings(_Strict):
    """A scrape target: a /metrics URL and its job label."""

    url: str
    job: str = "selfheal"


class SourceSettings(_Strict):
    """Where rule and verify queries are answered: selfheal's own TSDB, or a Prometheus."""

    kind: Literal["local", "prometheus"] = "local"
    url: str | None = None

    @pydantic.model_validator(mode="after")
    def _url_for_prometheus(self) -> SourceSettings:
        if self.kind == "prometheus" and not self.url:
            raise ValueError("a prometheus source needs its `url`")
        return self


class AlertSettings(_Strict):
    """Where alerts come from: selfheal's rule evaluation, or Alertmanager's webhook."""

    source: Literal["rules", "alertmanager"] = "rules"
    # The labels that make alerts of one name the same incident; default: all of them. An
    # alert storm over many pods becomes one incident per workload with, say,
    # [namespace, deployment].
    group_by: tuple[str, ...] | None = pydantic.Field(default=None, min_length=1)
    # Alertmanager's alerts waiting in the durable inbox, at most: past it the webhook
    # answers 503 with Retry-After and Alertmanager retries.
    max_pending: int = pydantic.Field(default=50_000, ge=1)


# Signature algorithms a provider's tokens may use (never "none", never a shared secret).
JwtAlgorithm = Literal["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]


class OidcSettings(_Strict):
    """Bearer JWTs from an OIDC provider, checked against its published keys (JWKS)."""

    issuer: str = pydantic.Field(min_length=1)
    audience: str = pydantic.Field(min_length=1)
    jwks_url: str = pydantic.Field(pattern=r"^https?://")
    identity_claim: str = "sub"
    roles_claim: str = "roles"
    # Allowed clock difference between the provider and this machine.
    leeway: Annotated[Duration, pydantic.Field(ge=0)] = 60.0
    algorithms: tuple[
        Literal["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"], ...
    ] = (
        "RS256",
        "ES256",
        "EdDSA",
    )


class AuthSettings(_Strict):
    """Who may call the API: API tokens (a file or an environment variable) and/or OIDC."""

    # A YAML file of token digests, identities and roles (docs/security.md).
    tokens_file: Path | None = None
    # The name of an environment variable holding the same YAML (for a Kubernetes Secret).
    tokens_env: str | None = pydantic.Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    oidc: OidcSettings | None = None

    @pydantic.model_validator(mode="after")
    def _names_a_credential(self) -> AuthSettings:
        if self.tokens_file is None and self.tokens_env is None and self.oidc is None:
            raise ValueError("set `tokens_file`, `tokens_env` or `oidc`")
        return self


class RateLimitSettings(_Strict):
    """Write requests each caller may make: `per_second` on average, `burst` at once."""

    per_second: float = pydantic.Field(default=50.0, gt=0)
    burst: int = pydantic.Field(default=500, ge=1)


class TlsSettings(_Strict):
    """HTTPS for the API; with `client_ca_file`, callers must also show a certificate it signed."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


class ApiSettings(_Strict):
    """The HTTP API (webhooks, receivers, incidents, approvals): where and for whom.

    Without `auth`, the API listens on loopback only and accepts one local token, made at
    the first start and kept in the state directory (`api-token`), for sending alerts and
    reading; approvals then go through `selfheal approve` on this machine.
    """

    listen: str = pydantic.Field(default="127.0.0.1:0", pattern=r"^[\w.\-\[\]:]+:\d{1,5}$")
    auth: AuthSettings | None = None
    rate_limit: RateLimitSettings = RateLimitSettings()
    tls: TlsSettings | None = None
    # Host header values the API answers (a request naming another host is refused, which
    # stops a web page that rebinds its domain to 127.0.0.1 from reaching the API). Default:
    # the loopback names and the listen address's host.
    allowed_hosts: tuple[str, ...] | None = None

    def hosts(self) -> tuple[str, ...]:
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        host = self.listen.rpartition(":")[0]
        return tuple(dict.fromkeys(["127.0.0.1", "localhost", host]))


class StateSettings(_Strict):
    """Where the store and the workflow engine keep their state.

    The default (no `url`) is SQLite files in `state_dir`, for one controller. A
    `postgresql+psycopg://...` URL is shared by every replica: the store's tables, the
    workflow engine's system tables (their own schema), the leases and the heartbeats.
    """

    url: str | None = None

    @pydantic.field_validator("url")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite:", "postgresql")):
            raise ValueError("use a sqlite:/// or postgresql+psycopg:// URL")
        return url

    @property
    def shared(self) -> bool:
        """Whether replicas share this state (PostgreSQL), not one process alone (SQLite)."""
        return self.url is not None and self.url.startswith("postgresql")


class BusSettings(_Strict):
    """How the API hands alerts to the replicas: in-process (one node) or NATS JetStream."""

    kind: Literal["inprocess", "nats"] = "inprocess"
    url: str = "nats://127.0.0.1:4222"
    stream: str = pydantic.Field(default="SELFHEAL", pattern=r"^[A-Za-z0-9_-]+$")
    subject: str = pydantic.Field(default="selfheal.alerts", pattern=r"^[A-Za-z0-9_.-]+$")
    consumer: str = pydantic.Field(default="selfheal-intake", pattern=r"^[A-Za-z0-9_-]+$")


class ReplicaSettings(_Strict):
    """This replica: its id, how often it says it lives, and how long a lease lasts."""

    # Default: the host name and the process id (also the workflow engine's executor id).
    id: str | None = pydantic.Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    heartbeat: Annotated[Duration, pydantic.Field(gt=0)] = 2.0
    # A replica silent for this long is taken for dead: its leases and workflows pass on.
    lease: Annotated[Duration, pydantic.Field(gt=0)] = 10.0

    @pydantic.model_validator(mode="after")
    def _beats_within_a_lease(self) -> ReplicaSettings:
        if self.heartbeat * 2 > self.lease:
            raise ValueError("the heartbeat must come at least twice within a lease")
        return self


class TelemetrySettings(_Strict):
    """How often to scrape and evaluate rules, and how long to keep samples."""

    scrape_interval: Annotated[Duration, pydantic.Field(gt=0)] = 1.0
    evaluation_interval: Annotated[Duration, pydantic.Field(gt=0)] = 1.0
    retention: Annotated[Duration, pydantic.Field(gt=0)] = 1800.0
    targets: tuple[TargetSettings, ...] = ()
    source: SourceSettings = SourceSettings()


class BudgetSettings(_Strict):
    """The daily remediation budget and the price of a replica-hour."""

    daily: float = pydantic.Field(default=100.0, ge=0)
    currency: str = "USD"
    cost_per_replica_hour: float = pydantic.Field(default=0.5, ge=0)


class SloSettings(_Strict):
    """The latency SLO the policy is told about."""

    p95_latency: Duration = 0.2


class ChannelSettings(_Strict):
    """A notification channel; with a webhook, notifications are also POSTed there."""

    webhook: str | None = None


def _promql(text: str) -> str:
    try:
        promql.parse(text)
    except promql.PromQLError as exc:
        raise ValueError(f"not a valid PromQL query: {exc}") from exc
    return text


PromQL = Annotated[str, pydantic.AfterValidator(_promql)]


def _detector_name(name: str) -> str:
    if name != "default" and name not in registry.DETECTORS:
        known = ", ".join(["default", *sorted(registry.THRESHOLDS)])
        raise ValueError(f"unknown detector {name!r}; known: {known}")
    if name != "default" and name not in registry.THRESHOLDS:
        known = ", ".join(sorted(registry.THRESHOLDS))
        raise ValueError(
            f"detector {name!r} scores on no common scale, so a watch cannot threshold it; "
            f"use one whose scores lie in [0, 1]: {known}"
        )
    return registry.DEFAULT if name == "default" else name


class WatchSettings(_Strict):
    """A PromQL query whose every series gets its own streaming anomaly detector."""

    # The alert name an anomaly on this query becomes.
    name: str = pydantic.Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    query: PromQL
    detector: Annotated[str, pydantic.AfterValidator(_detector_name)] = registry.DEFAULT
    # The detector score from which a series counts as anomalous; default: the detector's.
    threshold: float | None = pydantic.Field(default=None, gt=0, le=1)
    # How much one anomaly of this query alone says about its service (see correlation).
    weight: float = pydantic.Field(default=0.6, ge=0, le=1)
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)
    # Detectors kept for this query; past it the series not seen for longest is dropped.
    max_series: int = pydantic.Field(default=1000, ge=1)

    @property
    def score_threshold(self) -> float:
        return self.threshold if self.threshold is not None else registry.THRESHOLDS[self.detector]


class AnomalySettings(_Strict):
    """Streaming detectors on PromQL series, correlated per service into signals."""

    # How often every watched query is evaluated and its detectors fed one sample.
    interval: Annotated[Duration, pydantic.Field(gt=0)] = 5.0
    # A signal opens or joins an incident once its confidence reaches this.
    min_confidence: float = pydantic.Field(default=0.8, gt=0, le=1)
    # The labels that name a service: anomalies sharing them corroborate each other.
    service_labels: tuple[str, ...] = ("namespace", "deployment")
    correlation_window: Annotated[Duration, pydantic.Field(gt=0)] = 120.0
    # A series per service whose value changes when the service is deployed or reconfigured.
    deploy_query: PromQL | None = (
        "max by (namespace, deployment) (kube_deployment_metadata_generation)"
    )
    deploy_weight: float = pydantic.Field(default=0.5, ge=0, le=1)
    # A firing signal resolves after this long without an anomaly.
    resolve_after: Annotated[Duration, pydantic.Field(gt=0)] = 60.0
    watches: tuple[WatchSettings, ...] = ()

    @pydantic.model_validator(mode="after")
    def _unique_names(self) -> AnomalySettings:
        names = [watch.name for watch in self.watches]
        if len(names) != len(set(names)):
            raise ValueError(f"watch names must be unique, got {names}")
        return self


Mode = Literal["enforce", "shadow", "off"]
# The stricter of two modes wins: a runbook in shadow stays in shadow under an enforcing policy.
MODE_STRICTNESS: dict[str, int] = {"enforce": 0, "shadow": 1, "off": 2}


class ModeSettings(_Strict):
    """Whether decisions act: enforce (act), shadow (decide and record only), off."""

    policy: Mode = "enforce"
    runbooks: dict[str, Mode] = pydantic.Field(default_factory=dict)

    def for_runbook(self, runbook: str) -> Mode:
        """The mode a plan choosing `runbook` runs in: the stricter of policy's and its own."""
        own = self.runbooks.get(runbook, "enforce")
        return own if MODE_STRICTNESS[own] > MODE_STRICTNESS[self.policy] else self.policy


class ApprovalSettings(_Strict):
    """How long a remediation waits for people, and which runbooks need two of them."""

    timeout: Annotated[Duration, pydantic.Field(gt=0)] = 900.0
    # Destructive runbooks: two distinct people must approve (a two-person rule).
    two_person: tuple[str, ...] = ()
    # Runbooks that always wait for a person here, whatever the policy and their risk.
    required_for: tuple[str, ...] = ()


class AuditSinkSettings(_Strict):
    """Where each audit checkpoint is also sent: a file of JSON lines or a webhook, not both."""

    file: Path | None = None
    webhook: str | None = None
    # Real seconds a webhook has to answer each POST.
    timeout: Annotated[Duration, pydantic.Field(gt=0)] = 5.0
    # Further tries of a failed POST, with backoff, before the checkpoint waits for the next.
    retries: int = pydantic.Field(default=2, ge=0, le=10)

    @pydantic.field_validator("webhook")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in {"http", "https"} or not parts.netloc:
                raise ValueError("use an http:// or https:// URL")
        return url

    @pydantic.model_validator(mode="after")
    def _one_place(self) -> AuditSinkSettings:
        if (self.file is None) == (self.webhook is None):
            raise ValueError("set one of `file` and `webhook`")
        return self


class AuditSettings(_Strict):
    """Signed checkpoints of the audit chain's head (docs/audit.md)."""

    # The Ed25519 private key (PEM, PKCS#8) that signs; `selfheal audit keygen` makes one.
    signing_key: Path
    # Scenario seconds between checkpoints, when the chain's head has moved meanwhile.
    checkpoint_every: Annotated[Duration, pydantic.Field(gt=0)] = 60.0
    sink: AuditSinkSettings | None = None


class Settings(_Strict):
    """A whole `selfheal.yaml`."""

    twin: TwinSettings | None = None
    cluster: ClusterSettings = ClusterSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    rules: tuple[Path, ...] = pydantic.Field(min_length=1)
    policies: Path
    # Limits no policy can lift (docs/guardrails.md), re-read while running when it changes.
    guardrails: Path | None = None
    runbooks: Path
    state_dir: Path = Path(".selfheal/state")
    state: StateSettings = StateSettings()
    bus: BusSettings = BusSettings()
    replica: ReplicaSettings = ReplicaSettings()
    budget: BudgetSettings = BudgetSettings()
    slo: SloSettings = SloSettings()
    alerts: AlertSettings = AlertSettings()
    anomalies: AnomalySettings = AnomalySettings()
    modes: ModeSettings = ModeSettings()
    approvals: ApprovalSettings = ApprovalSettings()
    audit: AuditSettings | None = None
    api: ApiSettings | None = None
    notifications: dict[str, ChannelSettings] = pydantic.Field(default_factory=dict)
    external_labels: dict[str, str] = pydantic.Field(default_factory=dict)
    # Scenario seconds per real second when not running the built-in twin: 1 against a real
    # cluster, the twin's --speed against a separately started twin.
    clock_speed: float = pydantic.Field(default=1.0, gt=0)
    # Where this file lives; relative paths above are resolved against it.
    base_dir: Path = Path()
    # The file itself (None for settings built in code), so a state names its config.
    config_file: Path | None = None

    @pydantic.model_validator(mode="after")
    def _needs_a_cluster(self) -> Settings:
        if self.twin is None and self.cluster.kubeconfig is None and not self.cluster.in_cluster:
            raise ValueError(
                "set `twin` (the built-in twin), `cluster.kubeconfig` or `cluster.in_cluster`"
            )
        return self

    def path(self, value: Path) -> Path:
        return value if value.is_absolute() else (self.base_dir / value).resolve()


def load_settings(path: Path) -> Settings:
    """Read and validate a config file; raise ConfigError naming file:line and key path."""
    text = text_files.read_text(path, kind=text_files.CONFIG)
    document = sourced_yaml.load_yaml(text, source=str(path))
    for key in ("base_dir", "config_file"):
        if isinstance(document.data, dict) and key in document.data:
            raise ConfigError(
                f"`{key}` is set by selfheal, not in the file", location=document.locate([key])
            )
    settings = sourced_yaml.load_model(Settings, document)
    settings = settings.model_copy(
        update={"base_dir": path.parent.resolve(), "config_file": path.resolve()}
    )
    for index, rule_file in enumerate(settings.rules):
        _require(
            settings.path(rule_file),
            what=f"rule file {rule_file}",
            at=document.locate(["rules", index]),
        )
    for key in ("policies", "runbooks"):
        value = getattr(settings, key)
        where = document.locate([key])
        _require(settings.path(value), what=f"{key} directory {value}", at=where, is_dir=True)
    if settings.guardrails is not None:
        where = document.locate(["guardrails"])
        _require(
            settings.path(settings.guardrails),
            what=f"guardrails file {settings.guardrails}",
            at=where,
        )
    api_files: list[tuple[list[str | int], Path | None]] = []
    if settings.api is not None:
        auth, tls = settings.api.auth, settings.api.tls
        api_files.append((["api", "auth", "tokens_file"], auth.tokens_file if auth else None))
        api_files.extend(
            (["api", "tls", key], getattr(tls, key) if tls else None)
            for key in ("cert_file", "key_file", "client_ca_file")
        )
    for key_path, file in api_files:
        if file is not None:
            where = document.locate(key_path)
            _require(settings.path(file), what=".".join(map(str, key_path)), at=where)
    if settings.cluster.kubeconfig:
        where = document.locate(["cluster", "kubeconfig"])
        _require(settings.path(settings.cluster.kubeconfig), what="kubeconfig", at=where)
    if settings.audit is not None:
        _check_audit(settings, settings.audit, document)
    return settings


def _check_audit(
    settings: Settings, audit: AuditSettings, document: sourced_yaml.SourcedDocument
) -> None:
    """The signing key must be an Ed25519 private key; the sink's file must have a home."""
    where = document.locate(["audit", "signing_key"])
    key_path = settings.path(audit.signing_key)
    _require(key_path, what=f"signing key {audit.signing_key}", at=where)
    try:
        audit_signing.load_signing_key(key_path)
    except ConfigError as error:
        raise ConfigError(f"signing key {error}", location=where) from error
    if audit.sink is not None and audit.sink.file is not None:
        folder = settings.path(audit.sink.file).parent
        _require(
            folder,
            what=f"the directory of the checkpoints file, {folder},",
            at=document.locate(["audit", "sink", "file"]),
            is_dir=True,
        )


def _require(path: Path, *, what: str, at: SourceLocation, is_dir: bool = False) -> None:
    """Refuse, at the config's key, a path that is missing or of the wrong kind."""
    try:
        if is_dir and not path.is_dir():
            problem = "is not a directory" if path.exists() else "does not exist"
        elif not is_dir and not path.is_file():
            problem = "is a directory, not a file" if path.is_dir() else "does not exist"
        else:
            return
    except OSError as exc:  # a name too long for the file system, a directory not searchable
        problem = f"cannot be looked up: {exc.strerror or exc}"
    raise ConfigError(f"{what} {problem}", location=at)
