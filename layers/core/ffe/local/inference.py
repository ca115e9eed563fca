"""The inference endpoint, offline: the container's own server (``gpu_inference.serve``) on loopback.

``LocalCloud`` starts it before deploying and passes its URL as the template's ``InferenceEndpointUrl``, so
InferDecision's ``sagemaker-runtime`` InvokeEndpoint call reaches it exactly as it reaches SageMaker in AWS
(moto lets requests to hosts it does not emulate through). It serves every version of the local model store
(``ffe run``'s ``.ffe/models/<version>/``, the container's ``FFE_MODEL_STORE``) and the bundled one, as each
instance asks, on the GPU if torch sees one, else on CPU; the LLM voter asks the Ollama at ``OLLAMA_HOST`` and
reports itself unavailable when none answers.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Where the container's code lives in the checkout; it is not part of the installed ``ffe`` package.
CONTAINER_PACKAGE = "gpu_inference"

logger = logging.getLogger(__name__)
_LLM_LOG = logging.getLogger("gpu_inference.llm")


@dataclass
class LocalInference:
    project: Path
    model_dir: Path | None = None  # the version serving instances that name none; None: the bundled one
    ollama_host: str | None = None  # None: OLLAMA_HOST, else Ollama's default (127.0.0.1:11434)
    store: Path | None = None  # the local model store (<version>/ folders): every version instances name
    url: str = ""
    load_error: str | None = None  # the models could not load: the server answers 503 saying why
    predictor: Any = field(default=None, repr=False)
    server: Any = field(default=None, repr=False)
    _stop: Callable[[], None] | None = field(default=None, repr=False)
    _llm_log_level: int = field(default=logging.NOTSET, repr=False)

    def start(self) -> str:
        """Load the models and serve them on a free loopback port; returns the server's URL."""
        if not (self.project / CONTAINER_PACKAGE).is_dir():
            raise RuntimeError(f"no {CONTAINER_PACKAGE}/ in {self.project}: the local endpoint runs its server")
        if str(self.project) not in sys.path:
            sys.path.insert(0, str(self.project))
        from gpu_inference.gpu import detect
        from gpu_inference.llm import LlmVoter, timeout_from_env
        from gpu_inference.predictor import ModelLoadError, Predictor
        from gpu_inference.serve import serve_in_thread

        _, plan = detect()
        llm = LlmVoter(plan, host=self.ollama_host, timeout_s=timeout_from_env())
        # No Ollama is the usual local case: `describe()` and every decision's reason say so; no warning per call.
        self._llm_log_level = _LLM_LOG.level
        _LLM_LOG.setLevel(logging.ERROR)
        if llm.available():
            _LLM_LOG.setLevel(self._llm_log_level)
        try:
            self.predictor = Predictor.load(
                str(self.model_dir) if self.model_dir is not None else "bundled",
                llm=llm,
                store=str(self.store) if self.store is not None else None,
            )
        except ModelLoadError as exc:  # as in SageMaker: the endpoint runs unhealthy and every call says why
            self.load_error = str(exc)
            logger.warning("inference models failed to load", extra={"error": self.load_error})
        self.server, self._stop = serve_in_thread(self.predictor)
        self.server.load_error = self.load_error
        self.url = self.server.url
        return self.url

    def describe(self) -> str:
        """One line for ``ffe run``: the server, the versions and device it serves, and the LLM voter's Ollama."""
        if self.predictor is None:
            return f"{self.url} is unhealthy, every decision holds: {self.load_error}"
        llm = self.predictor.llm
        line = f"{self.url} serves {self.predictor.version} on {self.predictor.device_name}"
        if self.store is not None:
            line += f" (and any version in {self.store})"
        if llm is None:
            return f"{line}; no LLM voter"
        reach = "reachable" if llm.available() else "unreachable, so the RL voter decides alone and says so"
        return f"{line}; LLM voter {' or '.join(llm.models)} via Ollama at {llm.host} ({reach})"

    def stop(self) -> None:
        """Stop serving and let go of the models (``serve_in_thread``'s stop frees them on this thread)."""
        self.predictor = None
        if self._stop is not None:
            self._stop()
            self._stop = None
        _LLM_LOG.setLevel(self._llm_log_level)
