"""User-facing errors: the CLI prints them as one line and exits non-zero, no traceback."""


class SolarRayError(Exception):
    """Bad input or an unmet precondition. The message names the file, row, key or tensor at fault."""

    exit_code = 2


class ConfigError(SolarRayError):
    """A config file or override is invalid."""


class ArtifactError(SolarRayError):
    """An input artifact is missing or malformed, or an output already exists."""


class DataError(SolarRayError):
    """A dataset is missing fields, empty, or otherwise unusable."""


class WorkFailed(SolarRayError):
    """Work on Ray failed (every trial of a sweep, a stage's workers): the message names the first error and the
    file holding its full trace."""

    exit_code = 1


def root_cause(exc: BaseException) -> str:
    """`Type: message` of the innermost cause of an exception from Ray, on one line: a RayTaskError holds the
    worker's own exception in `.cause`, Ray Train's WorkerGroupError each worker's in `.worker_failures` (the
    lowest rank is named) and its ControllerError the controller's in `.controller_failure`."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        failures = getattr(exc, "worker_failures", None) or {}
        inner = (failures[min(failures)] if failures else None) or getattr(exc, "controller_failure", None) \
            or getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    message = lines[-1] if lines else ""
    name = type(exc).__name__.removeprefix("RayTaskError(").removesuffix(")")
    text = message if message.startswith(f"{name}:") else f"{name}: {message}"
    return text if len(text) <= 400 else text[:397] + "..."


def remote_cause(exc: BaseException) -> BaseException:
    """A SolarRayError raised inside a Ray task or actor, unwrapped from Ray's wrapper (whose text carries the
    remote traceback), so the CLI prints its one line; any other exception as it came."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, SolarRayError) else exc
