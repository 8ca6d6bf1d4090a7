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
