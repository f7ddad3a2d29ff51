"""Errors of the live exchange clients (each states its HTTP and exit status)."""

from __future__ import annotations

from ridgeline.errors import Conflict, RidgelineError


class ExchangeError(RidgelineError):
    """A partner's exchange answered with an error Ridgeline cannot work around (502)."""

    code = "exchange"
    http_status = 502


class ExchangeUnavailable(ExchangeError):
    """The partner could not be reached, or kept failing (429 or 5xx) after every retry."""

    code = "exchange_unavailable"


class ExchangeAuthFailed(ExchangeError):
    """The partner refused the configured credentials (HTTP 401 or 403)."""

    code = "exchange_auth"


class CredentialsMissing(ExchangeError):
    """No credentials for a source in the environment or the credentials file (503)."""

    code = "exchange_credentials"
    http_status = 503


class ExchangeBusy(Conflict):
    """Another process is fetching this source now (its lease has not run out)."""

    code = "exchange_busy"


class CursorExpired(ExchangeError):
    """The partner no longer accepts a paging cursor; the fetch restarts its range."""

    code = "exchange_cursor_expired"


class FetchStopped(Exception):
    """The fetch was asked to stop (server shutting down); not an error of the partner."""
