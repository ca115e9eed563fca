"""Per-function settings, read from the environment once per container (``get_settings``).

Each function composes the mixins it needs, so a missing or malformed setting fails on the first
invocation with a message naming it. Secrets never live here: only the ARN of the secret.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ffe.containers import container_cached
from ffe.domain.errors import PermanentError
from ffe.domain.staleness import DEFAULT_DAILY_MAX_MISSING_SESSIONS

if TYPE_CHECKING:
    from ffe.domain.experiments import Guardrails

S = TypeVar("S", bound="BaseSettings")


class BaseSettings(BaseModel):
    # defer_build: a settings model's validator is built at its first get_settings, so a function builds only the
    # settings it reads (bench/bench_cold_start.py --profile)
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    stage: str = "local"


class ProviderSettings(BaseSettings):
    """Which live providers are configured: a provider without its secret is left out of every chain."""

    alpha_vantage_secret_arn: str | None = None
    oanda_secret_arn: str | None = None
    coinbase_enabled: bool = True  # public candles: no credentials needed
    breaker_table: str | None = None  # DynamoDB; unset = breakers per container only
    bar_cache_table: str | None = None  # DynamoDB; unset = no cache
    breaker_fail_max: int = Field(default=5, ge=1, le=100)
    breaker_reset_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    # the providers' shared token buckets (ffe.adapters.rate_limit): unset = their documented limits,
    # "" = none, else e.g. "alpha_vantage=75/60s,oanda=100/1s,coinbase=10/1s" (docs/market-data.md#rate-limits)
    rate_limits: str | None = None
    rate_limit_wait_s: float = Field(default=1.0, ge=0, le=10)  # the longest a fetch waits for a token

    @field_validator("rate_limits")
    @classmethod
    def _limits_parse(cls, spec: str | None) -> str | None:
        """A RATE_LIMITS that does not parse is a bad environment, said at start-up like any other setting."""
        from ffe.adapters.rate_limit import parse_rate_limits

        if spec is not None:
            parse_rate_limits(spec)
        return spec


class MarketDataSettings(ProviderSettings):
    # "scenario" is for `ffe run --bars` only: the template's MarketDataProvider parameter cannot select it
    market_data_provider: Literal["replay", "live", "scenario"] = "replay"
    scenario_uri: str | None = Field(default=None, pattern=r"^s3://[^/]+/")  # the scenario files' prefix
    lookback_bars: int = Field(default=120, ge=60, le=1000)

    @model_validator(mode="after")
    def _scenario_has_files(self) -> MarketDataSettings:
        if self.market_data_provider == "scenario" and not self.scenario_uri:
            raise ValueError("MARKET_DATA_PROVIDER=scenario needs SCENARIO_URI=s3://bucket/prefix/")
        return self


class DatabaseSettings(BaseSettings):
    """Either a libpq URL (local runs, tests) or the ARN of an RDS-style JSON secret (AWS)."""

    database_url: str | None = None
    db_secret_arn: str | None = None
    db_host: str | None = None  # e.g. the RDS Proxy endpoint: overrides the secret's host
    # the API's experiment and champion writes log in with this secret (role ffe_experiments) while its reads use
    # DB_SECRET_ARN (ffe_api, SELECT only); unset: DB_SECRET_ARN for both (docs/database-roles.md)
    db_experiments_secret_arn: str | None = None
    # TLS: unset keeps the URL's own sslmode, or the secret's ("require" when it names none); Aurora takes
    # "require" or "verify-full" (with DB_SSLROOTCERT: the RDS CA bundle's path, or "system")
    db_sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    db_sslrootcert: str | None = None
    db_statement_timeout_ms: int = Field(default=5000, ge=100, le=60_000)
    db_connect_timeout_s: int = Field(default=5, ge=1, le=60)

    def for_experiments(self) -> DatabaseSettings:
        """These settings with DB_EXPERIMENTS_SECRET_ARN as the secret, when set (a DATABASE_URL wins, as always)."""
        if self.db_experiments_secret_arn and not self.database_url:
            return self.model_copy(update={"db_secret_arn": self.db_experiments_secret_arn})
        return self

    @model_validator(mode="after")
    def _one_source(self) -> DatabaseSettings:
        if not (self.database_url or self.db_secret_arn):
            raise ValueError("set DB_SECRET_ARN (AWS) or DATABASE_URL (local) so decisions can be recorded")
        return self


class MigrationSettings(DatabaseSettings):
    """MigrateDatabase: DB_SECRET_ARN is the master user's (it creates the roles); DB_ROLE_SECRET_ARNS, comma
    separated, the secrets of the login roles whose LOGIN and password it sets (docs/database-roles.md)."""

    db_role_secret_arns: str = ""

    @property
    def role_secret_arns(self) -> list[str]:
        return [arn.strip() for arn in self.db_role_secret_arns.split(",") if arn.strip()]


@container_cached
def get_settings(model: type[S]) -> S:
    """Parse ``model`` from the environment (keys are the field names, upper-cased), once per container."""
    env = {k.lower(): v for k, v in os.environ.items()}
    try:
        return model.model_validate(env)
    except ValidationError as exc:
        # imported here: the contracts' models are not every function's (RetainDecisions and MigrateDatabase
        # validate none; tests/template/test_template.py)
        from ffe.contracts import describe_errors

        described = describe_errors(exc, whole="environment", part=str.upper)
        problems = "; ".join(f"{field}: {message}" for field, message in described)
        raise PermanentError(f"bad configuration for {model.__name__}: {problems}") from None


class RiskSettings(DatabaseSettings):
    """The stage's risk limits and execution venue (defaults are conservative; set per stage)."""

    execution_mode: Literal["off", "paper", "live"] = "paper"
    risk_limits_parameter: str | None = None  # SSM parameter (JSON) with the stage's limits; overrides RISK_*
    oanda_secret_arn: str | None = None  # the same token trades on Oanda (checked by pre-flight)
    coinbase_trading_secret_arn: str | None = None  # CDP API key {"key_name", "private_key"} for Advanced Trade
    # An unplaced order reservation stops counting after this long: longer than a cycle can run (the state
    # machine's TimeoutSeconds) plus an in-flight ExecuteOrder's own timeout.
    reservation_ttl_seconds: int = Field(default=1200, ge=60, le=86_400)
    paper_starting_cash: float = Field(default=100_000, gt=0)
    paper_fee_rate: float = Field(default=0.001, ge=0, lt=0.1)  # 10 bp of the notional per fill
    paper_slippage: float = Field(default=0.0005, ge=0, lt=0.1)  # 5 bp against the order, from the bar's open
    risk_target_daily_volatility: float = Field(default=0.01, gt=0, lt=1)
    risk_max_position_fraction: float = Field(default=0.10, gt=0, lt=1)
    risk_max_gross_exposure: float = Field(default=1.0, gt=0, le=10)
    risk_daily_loss_limit: float = Field(default=0.03, gt=0, lt=1)
    risk_max_drawdown: float = Field(default=0.15, gt=0, lt=1)
    risk_var_limit: float = Field(default=0.02, gt=0, lt=1)


class ModelSettings(BaseSettings):
    """The model store (``ffe.adapters.models.ModelStore``): ``bundled`` (only the layer's bundle), a folder of
    ``<version>/`` bundles, or ``s3://bucket/prefix`` (``s3://<ModelBucket>/models`` with ModelSource=bucket)."""

    model_store: str = Field(default="bundled", min_length=1)


class StalenessSettings(ModelSettings):
    """CheckStaleness: the champion (its meta-controller's roll sets the bars needed) and the daily-bar rule."""

    # HOLD a daily series when more sessions than this have closed since its last bar (per stage, template.yaml)
    daily_max_missing_sessions: int = Field(default=DEFAULT_DAILY_MAX_MISSING_SESSIONS, ge=0, le=30)


class InferenceSettings(BaseSettings):
    """The stage's SageMaker endpoint for InferDecision (``ffe-<stage>-inference`` by default)."""

    entry_threshold: float = Field(default=0.15, gt=0, lt=1)  # |blend| the RL voter needs to leave HOLD
    inference_endpoint: str = "ffe-local-inference"
    inference_variant: str | None = "AllTraffic"
    inference_endpoint_url: str | None = None  # local runs: the inference server on loopback
    inference_timeout_s: float = Field(default=2.0, gt=0, le=60)
    inference_connect_timeout_s: float = Field(default=1.0, gt=0, le=10)
    inference_llm: bool = True  # False: the RL voter alone (the latency-critical path)
    # the LLM voter votes on the first this many assets of a Distributed Map cycle's universe, in file order; the
    # rest are decided by the RL voter alone (None: every asset; docs/scaling.md#the-llm-budget)
    inference_llm_assets_per_cycle: int | None = Field(default=None, ge=0, le=10_000)
    breaker_table: str | None = None
    breaker_fail_max: int = Field(default=3, ge=1, le=100)
    breaker_reset_timeout_s: float = Field(default=30.0, gt=0, le=3600)


class UniverseSettings(BaseSettings):
    """Where "Open the cycle" finds a cycle's assets when its input names none, and where a Distributed Map cycle
    keeps its files (docs/universe.md, docs/scaling.md)."""

    cycles_bucket: str | None = None  # ffe-<stage>-cycles-<account>: universe files, snapshots, the Map's results
    default_assets: list[str] = Field(default_factory=list, max_length=10_000)  # JSON: AssetUniverseJson

    @field_validator("default_assets", mode="before")
    @classmethod
    def _json_list(cls, value: object) -> object:
        if isinstance(value, str):
            import json

            try:
                return json.loads(value) if value.strip() else []
            except ValueError:
                raise ValueError('not a JSON array of symbols, e.g. ["BTCUSD","ETHUSD"]') from None
        return value


class ExperimentSettings(BaseSettings):
    """The stage's experiment defaults (issue 15): the guardrails a new experiment gets unless it names its own,
    and whether "Close the cycle" reviews running experiments (guardrails, rollback, canary steps)."""

    experiment_review: bool = True
    experiment_latency_p95_ms: float = Field(default=200.0, gt=0, le=60_000)
    experiment_max_degradation: float = Field(default=0.30, gt=0, le=1)
    experiment_metric: Literal["sharpe", "pnl", "max_drawdown"] = "sharpe"
    experiment_sustained_cycles: int = Field(default=3, ge=1, le=1000)

    def guardrails(self) -> Guardrails:
        """The default guardrails of a new experiment on this stage."""
        from ffe.domain.experiments import Guardrails

        return Guardrails(
            latency_p95_ms=self.experiment_latency_p95_ms,
            max_degradation=self.experiment_max_degradation,
            metric=self.experiment_metric,
            sustained_cycles=self.experiment_sustained_cycles,
        )
