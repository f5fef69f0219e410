"""The Kubernetes API error the package raises, in a module light enough to import anywhere.

Kept apart from `hooks.kube` (which loads the provider and the Kubernetes client) so that
services and operators can catch it without paying that import when a DAG file is parsed.
"""

from __future__ import annotations


class KubeError(RuntimeError):
    """A Kubernetes API failure, with the API's own reason and message kept readable."""

    def __init__(self, status: int, reason: str, message: str):
        self.status, self.reason = status, reason
        super().__init__(f"Kubernetes API {status} {reason}: {message}")
