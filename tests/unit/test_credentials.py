"""Generated credentials: what each is made of, with the random source injected or real."""

from __future__ import annotations

import itertools
import re

from antdb_k8s.core.credentials import SSH_CONFIG, SSHD_CONFIG, backrest_repo_config, new_password, rsa_key_pair


def test_password_is_cut_from_the_injected_source_and_url_safe_by_default():
    assert new_password(8, token=lambda n: "abcdefghijklmnop") == "abcdefgh"
    real = {new_password() for _ in range(20)}
    assert len(real) == 20 and all(re.fullmatch(r"[A-Za-z0-9_-]{24}", p) for p in real)


def test_backrest_config_uses_two_distinct_key_pairs():
    pairs = itertools.count(1)

    def fake_pair():
        n = next(pairs)
        return f"private-{n}", f"public-{n}"

    config = backrest_repo_config(fake_pair)
    assert config == {"authorized_keys": "public-1\n", "id_rsa": "private-1", "ssh_host_rsa_key": "private-2",
                      "config": SSH_CONFIG, "sshd_config": SSHD_CONFIG}


def test_real_key_pair_is_openssh_rsa():
    private, public = rsa_key_pair()
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----") and public.startswith("ssh-rsa ")
