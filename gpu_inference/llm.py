"""The LLM voter: asks a local Ollama model for a structured vote on one decision, or says why it cannot.

The answer must validate as :class:`LlmAnswer` (Ollama is asked to constrain its output to that JSON schema);
an invalid, partial or refusing answer is asked once more, then the voter *abstains* with the reason. A model
that cannot be loaded (not pulled: 404; out of memory or failed to load: 500) or that times out hands over to
the fallback model, and the vote says so. An unreachable Ollama is *unavailable*: no vote is ever made up.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Sequence
from typing import Any, Literal

import httpx
import ollama
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ffe.contracts import InferenceInstance, VoterOutput, describe_errors
from gpu_inference.gpu import LlmPlan

DEFAULT_HOST = "http://127.0.0.1:11434"
# Per Ollama call (FFE_LLM_TIMEOUT_S): a decision may take a retry and the fallback model, and InferDecision reads
# for 20 s. The one default: deploy.py's CONTAINER_ENV, serve.main and the offline endpoint take it from here.
DEFAULT_TIMEOUT_S = 5.0
MAX_ATTEMPTS = 2  # the first answer and one retry

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are one voter in an automated trading ensemble. Given a market summary, indicator features, the detected "
    "regime and the strategy scores, answer with one JSON object: action (BUY, SELL or HOLD), confidence (0 to 1, "
    "how sure you are) and reasoning (one or two sentences, at most 500 characters). This is a research signal that "
    "a risk gate checks; answer with the JSON object only."
)
RETRY_PROMPT = (
    "Your previous answer was not a valid JSON object with action, confidence and reasoning ({problem}). "
    "Answer again with the JSON object only."
)
_REFUSAL = re.compile(
    r"\b(i\s+(?:cannot|can't|can not|am unable to|won't)\s+(?:give|provide|offer)"
    r"|as an ai\b|not (?:a )?financial advi)",
    re.IGNORECASE,
)
_LOAD_FAILURE = ("out of memory", "failed to load", "requires more system memory", "error loading model")


class LlmAnswer(BaseModel):
    """What the model must answer (its JSON schema is sent as Ollama's ``format``)."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["BUY", "SELL", "HOLD"]
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    reasoning: str = Field(min_length=1, max_length=500)


ANSWER_SCHEMA: dict[str, Any] = LlmAnswer.model_json_schema()


class _ModelFailed(Exception):
    """The model could not answer at all (not pulled, out of memory, timed out): try the fallback."""


class _Unreachable(Exception):
    """Ollama itself is not there."""


def timeout_from_env() -> float:
    """The per-call Ollama timeout in seconds: ``FFE_LLM_TIMEOUT_S``, else :data:`DEFAULT_TIMEOUT_S`.

    Raises:
        ValueError: the variable is set to anything but a positive number.
    """
    raw = os.environ.get("FFE_LLM_TIMEOUT_S", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"FFE_LLM_TIMEOUT_S must be a positive number of seconds, got {raw!r}")
    return value


def build_prompt(instance: InferenceInstance) -> str:
    """The user message for one decision: deterministic text (sorted keys, fixed precision)."""
    s = instance.summary
    lines = [
        f"Asset: {instance.asset} ({instance.timeframe}), as of {instance.as_of.isoformat()}",
        f"Bars: {s.bars} from {s.first_time.isoformat()} to {s.last_time.isoformat()}",
        f"Last close: {s.last_close:.6g}; change over the bars: {s.change_pct:+.2f}%",
        f"High: {s.high:.6g}; low: {s.low:.6g}",
        f"Regime: {instance.regime_label or 'unknown'}",
    ]
    if instance.regime_probabilities:
        probs = ", ".join(f"{k} {v:.2f}" for k, v in sorted(instance.regime_probabilities.items()))
        lines.append(f"Regime probabilities: {probs}")
    if instance.features:
        lines.append("Features: " + ", ".join(f"{k} {v:+.4f}" for k, v in sorted(instance.features.items())))
    lines.append(
        "Strategy scores (-1 sell .. +1 buy): " + ", ".join(f"{k} {v:+.3f}" for k, v in sorted(instance.scores.items()))
    )
    lines.append(f"Entry threshold on the blended score: ±{instance.entry_threshold:.2f}")
    return "\n".join(lines)


class LlmVoter:
    """Votes through an Ollama server with ``plan``'s models (primary, then fallback)."""

    def __init__(
        self,
        plan: LlmPlan,
        host: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        client: ollama.Client | None = None,
    ) -> None:
        self.plan = plan
        self.host = host or os.environ.get("OLLAMA_HOST", DEFAULT_HOST)
        self.timeout_s = timeout_s
        self._client = client or ollama.Client(host=self.host, timeout=timeout_s)

    @property
    def models(self) -> Sequence[str]:
        return self.plan.models

    def available(self) -> bool:
        """Whether Ollama answers ``GET /api/tags``."""
        try:
            self._client.list()
        except (ConnectionError, httpx.HTTPError, ollama.ResponseError) as exc:
            logger.warning("ollama unavailable", extra={"host": self.host, "error": repr(exc)})
            return False
        return True

    def vote(self, instance: InferenceInstance) -> VoterOutput:
        """The LLM's vote on ``instance``: voted, abstained (bad answers) or unavailable (no model answered)."""
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": build_prompt(instance)}]
        failures: list[str] = []
        started = time.perf_counter()
        for model in self.models:
            t0 = time.perf_counter()
            try:
                out = self._ask(model, messages, t0)
            except _Unreachable as exc:
                return self._output("unavailable", model, started, f"Ollama at {self.host} unreachable: {exc}")
            except _ModelFailed as exc:
                failures.append(f"{model}: {exc}")
                logger.warning("llm model failed", extra={"model": model, "error": str(exc)})
                continue
            if failures:
                note = f"fallback model {model} answered after " + "; ".join(failures)
                out = out.model_copy(update={"reasoning": _clip(f"{out.reasoning} [{note}]")})
            return out
        return self._output("unavailable", self.models[-1], started, "no model could answer: " + "; ".join(failures))

    def _ask(self, model: str, messages: list[dict[str, str]], t0: float) -> VoterOutput:
        conversation = list(messages)
        problem = ""
        for _attempt in range(MAX_ATTEMPTS):
            content = self._chat(model, conversation)
            try:
                answer = parse_answer(content)
            except ValueError as exc:
                problem = str(exc)
                conversation = [
                    *messages,
                    {"role": "assistant", "content": content[:2000]},
                    {"role": "user", "content": RETRY_PROMPT.format(problem=problem[:200])},
                ]
                continue
            return VoterOutput(
                voter="llm",
                status="voted",
                action=answer.action,
                confidence=answer.confidence,
                reasoning=answer.reasoning,
                model=model,
                model_version=model,
                latency_ms=_ms(t0),
            )
        return self._output("abstained", model, t0, f"no valid answer after {MAX_ATTEMPTS} attempts: {problem}")

    def _chat(self, model: str, messages: list[dict[str, str]]) -> str:
        try:
            response = self._client.chat(
                model=model, messages=messages, format=ANSWER_SCHEMA, options={"temperature": 0}, stream=False
            )
        except ConnectionError as exc:
            raise _Unreachable(str(exc)) from exc
        except httpx.TimeoutException as exc:
            raise _ModelFailed(f"timed out after {self.timeout_s:g} s") from exc
        except httpx.TransportError as exc:
            raise _Unreachable(repr(exc)) from exc
        except ollama.ResponseError as exc:
            text = str(exc.error).lower()
            if exc.status_code == 404 or (exc.status_code >= 500 and any(s in text for s in _LOAD_FAILURE)):
                raise _ModelFailed(f"{exc.error} (HTTP {exc.status_code})") from exc
            raise _Unreachable(f"Ollama error {exc.status_code}: {exc.error}") from exc
        return str(response.message.content or "")

    def _output(self, status: Literal["abstained", "unavailable"], model: str, t0: float, reason: str) -> VoterOutput:
        return VoterOutput(
            voter="llm", status=status, reasoning=_clip(reason), model=model, model_version=model, latency_ms=_ms(t0)
        )


def parse_answer(content: str) -> LlmAnswer:
    """Validate the model's text as :class:`LlmAnswer`.

    Raises:
        ValueError: not JSON, a partial or invalid object, or a refusal; the message says which.
    """
    if _REFUSAL.search(content) and not content.lstrip().startswith("{"):
        raise ValueError(f"the model refused: {content[:120]!r}")
    try:
        raw = json.loads(content)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at {exc.pos}): {content[:120]!r}") from exc
    try:
        answer = LlmAnswer.model_validate(raw)
    except ValidationError as exc:
        fields = "; ".join(f"{field}: {message}" for field, message in describe_errors(exc, whole="answer"))
        raise ValueError(f"invalid answer: {fields}") from exc
    if _REFUSAL.search(answer.reasoning):
        raise ValueError(f"the model refused: {answer.reasoning[:120]!r}")
    return answer


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)
