"""Errors by what the caller must do.

The class name *is* the Step Functions error name (Lambda reports it as ``errorType``):
``decision_cycle.asl.json`` retries ``TransientError`` and catches the rest. Renaming a class
here is an interface change.
"""


class FfeError(Exception):
    """Base of every error the engine raises on purpose.

    Keyword context (provider, asset, timeframe, http_status, request_id, ...) is kept on
    ``.context`` and appended to the message, so it survives into the Step Functions cause.
    """

    def __init__(self, message: str, **context: object) -> None:
        self.context = {key: value for key, value in context.items() if value is not None}
        detail = ", ".join(f"{key}={value}" for key, value in self.context.items())
        super().__init__(f"{message} [{detail}]" if detail else message)


class TransientError(FfeError):
    """Worth retrying: timeouts, 5xx, a database that is briefly unreachable."""


class PermanentError(FfeError):
    """Retrying cannot help; the asset's iteration records the failure and moves on."""


class InvalidInputError(PermanentError, ValueError):
    """The input is malformed: a bad event, an unknown asset or timeframe, bad bars."""


class AuthError(PermanentError):
    """A provider or broker rejected our credentials (401/403 or auth wording)."""


class RateLimitedError(TransientError):
    """A provider asked us to slow down (429 or an in-body rate-limit note)."""

    def __init__(self, message: str, retry_after_seconds: float | None = None, **context: object) -> None:
        super().__init__(message, retry_after_seconds=retry_after_seconds, **context)
        self.retry_after_seconds = retry_after_seconds


class ConflictError(PermanentError):
    """The request conflicts with what is stored now (the API's 409); ``reason`` says how, in words."""

    def __init__(self, reason: str, **context: object) -> None:
        super().__init__(reason, **context)
        self.reason = reason


class InvalidTransitionError(ConflictError):
    """An experiment cannot make this transition now (promote a draft, start one on assets another holds)."""


class UnknownExperimentError(PermanentError, LookupError):
    """No experiment has this id (the API's 404; not an InvalidInputError: the request was well formed)."""
