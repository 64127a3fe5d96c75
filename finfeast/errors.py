"""Errors a user can cause and fix: the CLI prints them as one line, never as a traceback."""


class FinfeastError(Exception):
    """A user-facing error: bad config, a missing file, a service that is down."""

    exit_code = 2


class ServiceUnavailable(FinfeastError):
    """A service the profile needs (PostgreSQL, Redis, Kafka) cannot be reached."""

    exit_code = 3


class PartialFailure(FinfeastError):
    """Some sources or stages failed while the rest completed; the summary says which."""

    exit_code = 4


class ConfigurationError(FinfeastError):
    """A setting that retrying cannot fix (wrong password, unknown host, bad YAML, a database
    locked past its retries): fail at once with one clear line."""

    exit_code = 2
