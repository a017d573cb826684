"""Error types: each is both a click exception (for the CLI's exit code) and a builtin (for the library)."""
from __future__ import annotations

import click


class BacktestError(click.ClickException):
    """A failure that is not the user's input: exit code 1."""

    exit_code = 1


class InputError(click.ClickException, ValueError):
    """Bad input (config, data, CLI arguments): one clear message, exit code 2."""

    exit_code = 2

    def __init__(self, message: str):
        click.ClickException.__init__(self, message)
        ValueError.__init__(self, message)


class ConfigError(InputError):
    """A bad config key, type or value; the message names the file, line and key path."""


class DataError(InputError, LookupError):
    """A missing, malformed or short data series; the message names the series and the problem."""
