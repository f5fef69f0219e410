"""Generated credentials for a node's Secrets: passwords and pgBackRest's SSH keys.

Generated values go straight into Kubernetes Secrets and nowhere else: not into logs,
XCom or task return values. They are generated only when a Secret is missing, so a
re-run never rotates a password under a running node. The random source is a parameter
(default: the `secrets` module and fresh RSA keys), so what is derived from it is
testable; `cryptography` is imported only when a key is made, not when a DAG is parsed.
"""

from __future__ import annotations

import secrets
from typing import Callable

KeyPair = tuple[str, str]  # (OpenSSH private key, OpenSSH public key)

SSH_CONFIG = """Host *
StrictHostKeyChecking no
IdentityFile /tmp/id_rsa
Port 2022
User pgbackrest
"""
SSHD_CONFIG = """Port 2022
HostKey /sshd/ssh_host_rsa_key
PermitRootLogin no
PasswordAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile /sshd/authorized_keys
UsePAM no
"""


def new_password(length: int = 24, token: Callable[[int], str] = secrets.token_urlsafe) -> str:
    """URL-safe, so it survives YAML, connection URIs and shell quoting without escaping."""
    return token(length)[:length]


def rsa_key_pair() -> KeyPair:
    """A fresh 2048-bit RSA key pair in OpenSSH form."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, public


def backrest_repo_config(key_pair: Callable[[], KeyPair] = rsa_key_pair) -> dict[str, str]:
    """The keys Crunchy's `<cluster>-backrest-repo-config` Secret must hold (crunchy-pgo-v4.md)."""
    client_private, client_public = key_pair()
    host_private, _ = key_pair()
    return {
        "authorized_keys": client_public + "\n",
        "id_rsa": client_private,
        "ssh_host_rsa_key": host_private,
        "config": SSH_CONFIG,
        "sshd_config": SSHD_CONFIG,
    }


def operator_repo_config() -> dict[str, str]:
    """`pgo-backrest-repo-config` in the operator namespace: the files the operator copies into
    each cluster's repo Secret beside freshly generated keys (util/cluster.go
    CreateBackrestRepoSecrets). No S3 here: the AWS entries are present and empty."""
    return {"config": SSH_CONFIG, "sshd_config": SSHD_CONFIG, "aws-s3-credentials.yaml": "", "aws-s3-ca.crt": ""}
