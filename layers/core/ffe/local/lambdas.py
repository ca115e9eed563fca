"""Run the real Lambda handlers in-process when moto invokes a function.

moto would start a Docker container per invocation; there is no Docker here, so we replace one private
method, ``LambdaFunction._invoke_lambda`` (moto's minor version is pinned for this). Everything around
it is moto's own: the Invoke API, Step Functions' Lambda task, error reporting by ``errorType`` and the
CloudWatch log stream each invocation writes.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import sys
import threading
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from moto.awslambda.models import LambdaFunction

from ffe import containers
from ffe.monitoring.emf import keep_emf

Handler = Callable[[Any, Any], Any]


@dataclass
class LambdaContext:
    """The attributes of the Lambda runtime's context object that handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    timeout_s: float = 30.0

    def get_remaining_time_in_millis(self) -> int:
        return int(self.timeout_s * 1000)


@dataclass
class FunctionCode:
    code_dir: Path
    handler: str  # "module.function", as in the template


class InProcessLambdas:
    """Registry of deployed functions -> local handler code, and the moto patch that calls them."""

    def __init__(self, echo_logs: bool = False, emf_file: Path | None = None) -> None:
        self.functions: dict[str, FunctionCode] = {}
        self.echo_logs = echo_logs
        self.emf_file = emf_file  # where the EMF lines the functions print are kept (``ffe dashboard`` reads them)
        self._modules: dict[str, ModuleType] = {}
        self._lock = threading.RLock()  # one invocation at a time: handlers share os.environ
        self._original: Any = None
        self._env_before: dict[str, str | None] = {}

    def register(self, function_name: str, code: FunctionCode) -> None:
        """Register and initialise a function (its module-level code runs now, as in Lambda's init phase).

        Importing up front also keeps compilation out of the Map's worker threads: CPython 3.11 can fail
        with "AST constructor recursion depth mismatch" when threads compile concurrently (gh-106905).
        """
        self.functions[function_name] = code
        self._handler(function_name, code)

    @contextmanager
    def patched(self) -> Iterator[InProcessLambdas]:
        """Install the moto hook for as long as the context lasts."""
        self._original = LambdaFunction._invoke_lambda
        runtime = self

        def _invoke_lambda(fn: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            return runtime.invoke(fn, event)

        LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign,assignment]
        cold_start()
        try:
            yield self
        finally:
            LambdaFunction._invoke_lambda = self._original  # type: ignore[method-assign]
            cold_start()
            for key, value in self._env_before.items():  # the functions' environment leaves with them
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def invoke(self, fn: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        code = self.functions.get(fn.function_name)
        if code is None:
            message = f"no local code registered for Lambda function {fn.function_name!r}"
            return json.dumps({"errorType": "ResourceNotFoundException", "errorMessage": message}), True, message
        if isinstance(event, str):
            event = json.loads(event or "{}")
        context = LambdaContext(
            function_name=fn.function_name,
            invoked_function_arn=fn.function_arn,
            memory_limit_in_mb=int(fn.memory_size or 512),
            log_group_name=f"/aws/lambda/{fn.function_name}",
            timeout_s=float(fn.timeout or 30),
        )
        with self._lock:
            for key, value in (fn.environment_vars or {}).items():
                self._env_before.setdefault(key, os.environ.get(key))
                os.environ[key] = str(value)
            buffer = io.StringIO()
            caller_stdout, sys.stdout = sys.stdout, buffer  # the function's stdout is its log stream
            swapped = _capture_log_handlers(buffer)
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    response = self._handler(fn.function_name, code)(event, context)
                for warning in caught:  # Lambda writes warnings into the function's log, not the caller's
                    buffer.write(f"[WARNING] {warning.category.__name__}: {warning.message}\n")
                result, errored = json.dumps(response, default=str), False
            except Exception as exc:  # reported to the caller exactly as Lambda does
                result, errored = json.dumps(_error_payload(exc)), True
                buffer.write(f"[ERROR] {type(exc).__name__}: {exc}\n")
            finally:
                for handler, stream in swapped:
                    handler.stream = stream  # no flush: the buffer is read below, the old stream may be closed
                sys.stdout = caller_stdout
        logs = buffer.getvalue()
        fn.save_logs(logs or "(no output)")
        if self.emf_file is not None:
            keep_emf(logs, self.emf_file)
        if self.echo_logs:
            sys.stdout.write(logs)
        return result, errored, logs

    def _handler(self, function_name: str, code: FunctionCode) -> Handler:
        """Import the function's module once, like a warm container keeps it."""
        module_name, _, attr = code.handler.rpartition(".")
        module = self._modules.get(function_name)
        if module is None:
            path = code.code_dir / f"{module_name.replace('.', '/')}.py"
            spec = importlib.util.spec_from_file_location(f"ffe_local_fn.{function_name}.{module_name}", path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._modules[function_name] = module
        handler: Handler = getattr(module, attr)
        return handler


def cold_start() -> None:
    """Forget what warm containers keep: everything registered in ``ffe.containers`` (settings, clients,
    open database connections, the model bundle), as a new container would start without it."""
    containers.reset()


def _capture_log_handlers(buffer: io.StringIO) -> list[tuple[logging.StreamHandler[Any], Any]]:
    """Point every stdout log handler at the invocation's buffer; returns (handler, old stream) pairs.

    Powertools binds whatever sys.stdout was when its Logger was built (in tests, an earlier test's
    capture stream), so handlers are swapped by kind, not by identity with the current sys.stdout.
    Files, stderr and test-framework handlers are left alone. The old stream is not flushed: it may be
    an earlier capture that is closed by now (a library's handler bound at import, torch's for one).
    """
    swapped = []
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if (
                type(handler) is logging.StreamHandler  # not FileHandler, not pytest's capture handlers
                and handler.stream not in (sys.stderr, sys.__stderr__)
            ):
                handler.acquire()
                try:
                    swapped.append((handler, handler.stream))
                    handler.stream = buffer
                finally:
                    handler.release()
    return swapped


def _error_payload(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(type(exc), exc, exc.__traceback__),
    }
