"""The Kubernetes API error the package raises, in a module light enough to import anywhere.

Kept apart from `hooks.kube` (which loads the provider and the Kubernetes client) so that
services and operators can catch it without paying that import when a DAG file is parsed.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException


class KubeError(RuntimeError):
    """A Kubernetes API failure, with the API's own reason and message kept readable."""

    def __init__(self, status: int, reason: str, message: str):
        self.status, self.reason = status, reason
        super().__init__(f"Kubernetes API {status} {reason}: {message}")


class KubeRefused(KubeError, AirflowFailException):
    """The API refused the request (400, 401, 403, 405, 410, 415, 422): waiting cannot fix it,
    so neither the hook nor Airflow retries it. Fix the request, the RBAC or the token."""
