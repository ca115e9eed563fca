"""The experiment lifecycle and the stage's champion over HTTP (``register`` adds the routes to the app).

Experiments live in ``ffe.adapters.experiments`` (``get_experiments()``); the lifecycle rules are
``ffe.domain.experiments``. A transition records who asked: the caller's IAM identity (API Gateway's
``requestContext.identity.userArn``, else ``caller``), else ``api``. An unknown experiment is a 404; a
transition the lifecycle refuses, an id already taken, a start on assets another experiment holds, or a model
version the model store does not have is a 409 naming the reason. Promoting (an experiment's treatment, or a version
by ``PUT /models/champion``) passes the promotion gate first (``ffe.api.promotion``): a refusal is a 409 naming the
verdict unless the body says ``"force": true`` with a reason.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ffe import utc
from ffe.adapters.experiments import get_experiments
from ffe.api.models import IsoDatetime
from ffe.api.openapi import responses
from ffe.api.problems import BadRequest, Conflict, FieldProblem
from ffe.api.promotion import gate
from ffe.api.resolver import ProxyResolver
from ffe.contracts import NAME_PATTERN, Symbol, unique_assets
from ffe.domain.errors import UnknownExperimentError
from ffe.domain.experiments import (
    GUARDRAIL_METRICS,
    CanaryPlan,
    Champion,
    Experiment,
    ExperimentStatus,
    Guardrails,
    Mode,
    Transition,
    Trigger,
    check_transition,
    guardrails_to_json,
    plan_from_json,
    plan_to_json,
)
from ffe.domain.universe import ASSET_CLASSES, asset_class_of

MAX_REASON = 500
MAX_ACTOR = 256
MAX_STEPS = 20
MAX_STEP_DURATION_S = 90 * 86_400  # no canary step waits more than 90 days

ExperimentIdPath = Annotated[
    str, Path(alias="id", pattern=NAME_PATTERN, min_length=1, max_length=64, description="the experiment's id")
]
Version = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=64, description="e.g. ffe-0123abcd4567")]
Reason = Annotated[str, Field(max_length=MAX_REASON, description="why; recorded with the transition")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- requests -----------------------------------------------------------------------------------------


class StepBody(_Strict):
    share: float = Field(gt=0, le=1, description="the treatment's share of assets, in (0, 1]")
    min_decisions: int = Field(default=50, ge=0, le=1_000_000, description="covered decisions before advancing")
    min_duration_s: float = Field(default=21_600, ge=0, le=MAX_STEP_DURATION_S, description="seconds, at least")


class GuardrailsBody(_Strict):
    latency_p95_ms: float = Field(default=200.0, gt=0, le=60_000, description="decision-path latency p95 at most")
    max_degradation: float = Field(default=0.30, gt=0, le=1, description="relative, against the control")
    metric: Literal["sharpe", "pnl", "max_drawdown"] = "sharpe"
    sustained_cycles: int = Field(default=3, ge=1, le=1_000, description="cycles a latency breach must last")

    def guardrails(self) -> Guardrails:
        return Guardrails(self.latency_p95_ms, self.max_degradation, self.metric, self.sustained_cycles)


assert set(GUARDRAIL_METRICS) == {"sharpe", "pnl", "max_drawdown"}  # GuardrailsBody.metric lists them


class ExperimentCreate(_Strict):
    """A new experiment, stored as a draft: ``POST /experiments/{id}/start`` starts it."""

    id: Version | None = Field(default=None, description="default: exp-<yyyymmdd>-<6 hex>")
    treatment_version: Version = Field(description="a version published in the stage's model store")
    control_version: Version | None = Field(default=None, description="default: the stage's champion")
    mode: Mode = Field(default=Mode.SHADOW, description="shadow: the treatment never acts; split: a canary")
    assets: (
        Annotated[
            list[Annotated[Symbol, Field(json_schema_extra={"enum": sorted(ASSET_CLASSES)})]],
            Field(min_length=1, max_length=50, json_schema_extra={"uniqueItems": True}),
        ]
        | None
    ) = Field(default=None, description="known symbols, unique; default: the stage's whole universe")
    plan: Annotated[list[StepBody], Field(min_length=1, max_length=MAX_STEPS)] | None = Field(
        default=None,
        description="canary steps, shares strictly increasing, the last 1.0; default 5 % -> 25 % -> 100 %, "
        "50 decisions and 6 h each",
    )
    guardrails: GuardrailsBody | None = Field(
        default=None, description="default: the stage's (EXPERIMENT_LATENCY_P95_MS, EXPERIMENT_METRIC, ...)"
    )

    @field_validator("assets")
    @classmethod
    def _known_and_unique(cls, assets: list[str] | None) -> list[str] | None:
        if assets is not None:
            unique_assets(assets)
            for asset in assets:
                asset_class_of(asset)
        return assets

    @field_validator("plan")
    @classmethod
    def _a_canary(cls, plan: list[StepBody] | None) -> list[StepBody] | None:
        if plan is not None:
            plan_from_json([step.model_dump() for step in plan])  # InvalidInputError (a ValueError) says why
        return plan


class TransitionBody(_Strict):
    reason: Reason = ""


Force = Annotated[
    bool,
    Field(description="promote even when the promotion gate refuses; needs a non-empty reason, recorded with it"),
]


def _force_needs_a_reason(force: bool, reason: str) -> None:
    if force and not reason.strip():
        raise ValueError("force needs a non-empty reason: why the promotion gate is overruled is recorded")


class PromoteBody(_Strict):
    """The promotion gate decides, unless force overrules it with a reason (recorded)."""

    reason: Reason = ""
    force: Force = False

    @model_validator(mode="after")
    def _forced_with_a_reason(self) -> PromoteBody:
        _force_needs_a_reason(self.force, self.reason)
        return self


class ChampionBody(_Strict):
    """The promotion gate decides, unless force overrules it with a reason (recorded)."""

    version: Version = Field(description="a version published in the stage's model store")
    reason: Reason = ""
    force: Force = False

    @model_validator(mode="after")
    def _forced_with_a_reason(self) -> ChampionBody:
        _force_needs_a_reason(self.force, self.reason)
        return self


# --- responses ----------------------------------------------------------------------------------------


class StepView(_Strict):
    share: float
    min_decisions: int
    min_duration_s: float


class GuardrailsView(_Strict):
    latency_p95_ms: float
    max_degradation: float
    metric: str
    sustained_cycles: int


class ExperimentView(_Strict):
    id: str
    status: ExperimentStatus
    mode: Mode
    control_version: str
    treatment_version: str
    assets: list[str] | None = Field(description="null: the stage's whole universe")
    plan: list[StepView]
    step: int = Field(description="index of the current canary step in plan")
    share: float = Field(description="the treatment's share of assets now (0 in shadow mode)")
    guardrails: GuardrailsView
    created_at: datetime

    @classmethod
    def of(cls, experiment: Experiment) -> ExperimentView:
        return cls(
            id=experiment.id,
            status=experiment.status,
            mode=experiment.mode,
            control_version=experiment.control_version,
            treatment_version=experiment.treatment_version,
            assets=sorted(experiment.assets) if experiment.assets is not None else None,
            plan=[StepView.model_validate(s) for s in plan_to_json(experiment.plan)],
            step=experiment.step,
            share=experiment.share,
            guardrails=GuardrailsView.model_validate(guardrails_to_json(experiment.guardrails)),
            created_at=experiment.created_at,
        )


class TransitionView(_Strict):
    from_status: ExperimentStatus
    to_status: ExperimentStatus
    from_step: int
    to_step: int
    at: datetime
    actor: str
    trigger: Trigger
    reason: str
    evidence: dict[str, Any]

    @classmethod
    def of(cls, t: Transition) -> TransitionView:
        return cls.model_validate(t, from_attributes=True)  # the dataclass's fields, by name


class ExperimentDetail(ExperimentView):
    transitions: list[TransitionView] = Field(description="oldest first: who or what moved it, when and why")


class ExperimentList(_Strict):
    items: list[ExperimentView] = Field(description="oldest first")


class ChampionView(_Strict):
    version: str
    previous_version: str | None
    set_at: datetime | None = Field(description="null: never set; the bundle shipped in the layer")
    actor: str
    reason: str
    experiment_id: str | None = Field(description="the experiment whose promotion (or its rollback) set it")

    @classmethod
    def of(cls, c: Champion) -> ChampionView:
        return cls.model_validate(c, from_attributes=True)  # the dataclass's fields, by name


class ChampionReport(_Strict):
    champion: ChampionView
    history: list[ChampionView] = Field(description="newest first, at most 50")


# --- routes -------------------------------------------------------------------------------------------


def register(app: ProxyResolver) -> None:
    """Add the experiment and champion routes to ``app``."""
    _lifecycle_routes(app)
    _transition_routes(app)
    _champion_routes(app)


def caller(app: ProxyResolver) -> str:
    """Who is asking: the caller's IAM identity (``userArn``, else ``caller``), else ``api``."""
    identity = (app.current_event.raw_event.get("requestContext") or {}).get("identity") or {}
    who = identity.get("userArn") or identity.get("caller")
    return str(who)[:MAX_ACTOR] if who else "api"


def _lifecycle_routes(app: ProxyResolver) -> None:
    @app.endpoint(
        "POST",
        "/experiments",
        summary="Create an experiment (a draft)",
        description="The treatment (and control) must be published in the stage's model store. "
        "Start it with POST /experiments/{id}/start.",
        status_code=201,
        responses=responses(201, "The experiment was created", 409, 503),
        tags=["experiments"],
    )
    def create_experiment(request: Annotated[ExperimentCreate, Body()]) -> Response[ExperimentDetail]:
        store = get_experiments()
        control = request.control_version or store.champion().version
        _require_published(request.treatment_version, "body.treatment_version")
        _require_published(control, "body.control_version")
        created_at = utc.now()
        try:
            experiment = Experiment(
                id=request.id or f"exp-{created_at:%Y%m%d}-{secrets.token_hex(3)}",
                control_version=control,
                treatment_version=request.treatment_version,
                mode=request.mode,
                created_at=created_at,
                assets=frozenset(request.assets) if request.assets is not None else None,
                plan=plan_from_json([s.model_dump() for s in request.plan]) if request.plan else CanaryPlan(),
                guardrails=request.guardrails.guardrails() if request.guardrails else default_guardrails(),
            )
        except ValueError as exc:  # InvalidInputError: e.g. control and treatment are the same version
            raise BadRequest.for_fields([FieldProblem(field="body", message=str(exc))]) from None
        stored = store.create(experiment)
        return Response(
            status_code=201,
            content_type="application/json",
            body=_detail(stored),
            headers={"Location": f"/experiments/{stored.id}"},
        )

    @app.endpoint(
        "GET",
        "/experiments",
        summary="List experiments, oldest first",
        responses=responses(200, "The experiments", 503),
        tags=["experiments"],
    )
    def list_experiments(
        status: Annotated[ExperimentStatus | None, Query(description="only those in this status")] = None,
    ) -> ExperimentList:
        return ExperimentList(items=[ExperimentView.of(e) for e in get_experiments().list(status)])

    @app.endpoint(
        "GET",
        "/experiments/<id>",
        summary="One experiment with its transitions",
        responses=responses(200, "The experiment", 404, 503),
        tags=["experiments"],
    )
    def get_experiment(experiment_id: ExperimentIdPath) -> ExperimentDetail:
        found = get_experiments().get(experiment_id)
        if found is None:
            raise UnknownExperimentError(f"no experiment {experiment_id!r}")
        return _detail(found)

    @app.endpoint(
        "GET",
        "/experiments/<id>/results",
        summary="Compare the arms over a window: agreement, confidence and latency deltas, performance, risk",
        description="Default window: the experiment's whole life. The figures are defined in docs/experiments.md.",
        responses=responses(200, "The comparison", 404, 503),
        tags=["experiments"],
    )
    def experiment_results(
        experiment_id: ExperimentIdPath,
        since: Annotated[IsoDatetime | None, Query(description="from (ISO-8601 with offset)")] = None,
        until: Annotated[IsoDatetime | None, Query(description="to (ISO-8601 with offset)")] = None,
    ) -> dict[str, Any]:
        if since is not None and until is not None and since > until:
            raise BadRequest.for_fields([FieldProblem(field="query.since", message="must not be after query.until")])
        from ffe.adapters.experiment_results import get_experiment_results

        comparison: dict[str, Any] = get_experiment_results().compare(experiment_id, since, until).to_json()
        return comparison


def _transition_routes(app: ProxyResolver) -> None:
    def transition_route(action: str, to: ExperimentStatus, summary: str) -> None:
        @app.endpoint(
            "POST",
            f"/experiments/<id>/{action}",
            summary=summary,
            description="Recorded with the caller's IAM identity and the reason; 409 when the lifecycle refuses it.",
            responses=responses(200, "The experiment after the transition", 404, 409, 503),
            tags=["experiments"],
            operation_id=f"{action}_experiment",
        )
        def transition(
            experiment_id: ExperimentIdPath, request: Annotated[TransitionBody | None, Body()] = None
        ) -> ExperimentDetail:
            reason = request.reason if request else ""
            store = get_experiments()
            changed = store.transition(experiment_id, to, caller(app), Trigger.MANUAL, reason)
            return _detail(changed)

    transition_route("start", ExperimentStatus.RUNNING, "Start a draft, or resume a paused experiment")
    transition_route("pause", ExperimentStatus.PAUSED, "Pause: every asset is served by the control")
    transition_route("stop", ExperimentStatus.STOPPED, "Stop: all traffic to the control; final")

    @app.endpoint(
        "POST",
        "/experiments/<id>/promote",
        summary="Promote: the treatment becomes the champion (split, at share 1.0), if the promotion gate passes",
        description="The promotion gate compares the treatment's walk-forward evidence (published with it) with its "
        "naive router and with the control's; 409 naming the verdict when it refuses, unless the body has "
        '"force": true and a reason. The outcome is recorded in the reason (and the transition\'s evidence).',
        responses=responses(200, "The experiment after the transition", 404, 409, 503),
        tags=["experiments"],
        operation_id="promote_experiment",
    )
    def promote_experiment(
        experiment_id: ExperimentIdPath, request: Annotated[PromoteBody | None, Body()] = None
    ) -> ExperimentDetail:
        body = request or PromoteBody()
        store = get_experiments()
        current = store.get(experiment_id)
        if current is None:
            raise UnknownExperimentError(f"no experiment {experiment_id!r}")
        check_transition(current, ExperimentStatus.PROMOTED)  # the lifecycle's refusal says more than the gate's
        outcome = gate(
            current.treatment_version, current.control_version, "control", force=body.force, reason=body.reason
        )
        changed = store.transition(
            experiment_id, ExperimentStatus.PROMOTED, caller(app), Trigger.MANUAL, outcome.reason, outcome.evidence
        )
        return _detail(changed)

    transition_route(
        "rollback",
        ExperimentStatus.ROLLED_BACK,
        "Roll back: end a running or paused experiment, or undo a promotion (the control is champion again)",
    )

    @app.endpoint(
        "POST",
        "/experiments/<id>/advance",
        summary="Move a running split experiment's canary to its next step by hand",
        responses=responses(200, "The experiment at its next step", 404, 409, 503),
        tags=["experiments"],
    )
    def advance_experiment(
        experiment_id: ExperimentIdPath, request: Annotated[TransitionBody | None, Body()] = None
    ) -> ExperimentDetail:
        reason = request.reason if request else ""
        return _detail(get_experiments().advance(experiment_id, caller(app), Trigger.MANUAL, reason))


def _champion_routes(app: ProxyResolver) -> None:
    @app.endpoint(
        "GET",
        "/models/champion",
        summary="The stage's champion model version and its history",
        responses=responses(200, "The champion", 503),
        tags=["models"],
    )
    def get_champion() -> ChampionReport:
        store = get_experiments()
        return ChampionReport(
            champion=ChampionView.of(store.champion()), history=[ChampionView.of(c) for c in store.champions()]
        )

    @app.endpoint(
        "PUT",
        "/models/champion",
        summary="Make a published version the champion (every reader serves it from the next cycle)",
        description="The promotion gate compares the version's walk-forward evidence (published with it) with its "
        "naive router and with the current champion's; 409 naming the verdict when it refuses, unless the body has "
        '"force": true and a reason. The outcome is recorded in the champion\'s reason.',
        responses=responses(200, "The new champion", 409, 503),
        tags=["models"],
    )
    def put_champion(request: Annotated[ChampionBody, Body()]) -> ChampionView:
        _require_published(request.version, "body.version")
        store = get_experiments()
        current = store.champion().version
        reason = request.reason
        if request.version != current:  # the champion already: nothing changes what serves, nothing to gate
            reason = gate(request.version, current, "champion", force=request.force, reason=request.reason).reason
        return ChampionView.of(store.set_champion(request.version, caller(app), reason))


def default_guardrails() -> Guardrails:
    """The guardrails a new experiment gets when the request gives none: the stage's (``ExperimentSettings``)."""
    from ffe.settings import ExperimentSettings, get_settings

    return get_settings(ExperimentSettings).guardrails()


def _detail(experiment: Experiment) -> ExperimentDetail:
    transitions = [TransitionView.of(t) for t in get_experiments().transitions(experiment.id)]
    return ExperimentDetail(**ExperimentView.of(experiment).model_dump(), transitions=transitions)


def _require_published(version: str, field: str) -> None:
    """409 when the stage's model store does not have ``version`` (a cycle could never serve it)."""
    from ffe.adapters.models import get_model_store

    store = get_model_store()
    if not store.exists(version):
        raise Conflict(f"{field}: model version {version!r} is not in the model store {store.root}: publish it first")
