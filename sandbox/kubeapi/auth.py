"""Bearer-token authentication for the test API: one admin token and ServiceAccount tokens.

A ServiceAccount token is issued like a TokenRequest (`POST .../serviceaccounts/<n>/token`)
and bound to that ServiceAccount's uid: once the ServiceAccount is deleted (or re-created),
the token stops authenticating, as bound tokens do. The user a token stands for is the
real one: `system:serviceaccount:<ns>:<name>` in the groups `system:serviceaccounts`,
`system:serviceaccounts:<ns>` and `system:authenticated`.

Missing or unknown tokens get 401 (anonymous authentication is off).
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from .errors import ApiError
from .rbac import AUTHENTICATED, MASTERS, UserInfo

ADMIN = UserInfo("kubernetes-admin", (MASTERS, AUTHENTICATED))


class TokenAuthenticator:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.admin_token = "kubeapi-admin-" + secrets.token_hex(16)
        self._lock = threading.Lock()
        self._sa_tokens: dict[str, tuple[str, str, str]] = {}       # token -> (ns, name, uid)

    def issue_service_account_token(self, namespace: str, name: str) -> str:
        """A new token for an existing ServiceAccount (404 if there is none, as TokenRequest)."""
        sa = self.store.get("v1", "ServiceAccount", namespace, name)
        token = f"kubeapi-sa-{secrets.token_hex(16)}"
        with self._lock:
            self._sa_tokens[token] = (namespace, name, sa["metadata"]["uid"])
        return token

    def authenticate(self, authorization: str | None) -> UserInfo | None:
        """The user behind an `Authorization: Bearer <token>` header, or None."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        if secrets.compare_digest(token, self.admin_token):
            return ADMIN
        with self._lock:
            bound = self._sa_tokens.get(token)
        if bound is None:
            return None
        namespace, name, uid = bound
        try:
            sa = self.store.get("v1", "ServiceAccount", namespace, name)
        except ApiError:
            return None
        if sa["metadata"].get("uid") != uid:
            return None
        return UserInfo(f"system:serviceaccount:{namespace}:{name}",
                        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED))
