"""Validation of names and literals that end up in manifests and node DDL."""

from __future__ import annotations

import pytest

from antdb_k8s.core.names import (
    InvalidName,
    is_dns1123_label,
    is_dns1123_subdomain,
    quote_ident,
    quote_literal,
    require_dns1123_label,
    require_dns1123_subdomain,
    require_host,
    require_port,
    require_sql_identifier,
)


@pytest.mark.parametrize("value", ["gc", "cn1", "dn32", "cn-a", "a", "0", "a" * 63, "pgouser1"])
def test_dns1123_label_accepts(value):
    assert is_dns1123_label(value)
    assert require_dns1123_label(value, "namespace") == value


@pytest.mark.parametrize(
    "value",
    ["", "Cn1", "-cn", "cn-", "cn_1", "cn.1", "a" * 64, "cn1\n", " cn1", "cn1 ", "cñ", None, 7, b"cn1"],
)
def test_dns1123_label_rejects(value):
    assert not is_dns1123_label(value)
    with pytest.raises(InvalidName) as err:
        require_dns1123_label(value, "operator.namespace")
    assert str(err.value).startswith("operator.namespace:")


def test_dns1123_label_message_states_the_rule():
    with pytest.raises(InvalidName, match="lowercase letters, digits and '-'.*at most 63"):
        require_dns1123_label("Bad_Name", "namespace")


def test_invalid_name_is_a_value_error():
    with pytest.raises(ValueError):
        require_dns1123_label("UPPER", "namespace")


@pytest.mark.parametrize("value", ["gc", "gc.pgouser1.svc", "gc.pgouser1.svc.cluster.local", "a" * 63 + ".b"])
def test_dns1123_subdomain_accepts(value):
    assert is_dns1123_subdomain(value)
    assert require_dns1123_subdomain(value, "storage_class") == value


@pytest.mark.parametrize("value", ["", ".gc", "gc.", "gc..svc", "Gc.svc", "gc_x.svc", ".".join(["a" * 63] * 4 + ["b"])])
def test_dns1123_subdomain_rejects(value):
    assert not is_dns1123_subdomain(value)
    with pytest.raises(InvalidName, match="^storage_class: .*DNS-1123 subdomain"):
        require_dns1123_subdomain(value, "storage_class")


def test_quote_ident_plain_and_hyphenated():
    assert quote_ident("dn1") == '"dn1"'
    assert quote_ident("cn-a") == '"cn-a"'


def test_quote_ident_doubles_embedded_double_quotes():
    # The only way out of a quoted identifier is a lone '"'; doubled it stays inside.
    assert quote_ident('cn"; DROP NODE gc; --') == '"cn""; DROP NODE gc; --"'


def test_quote_ident_keeps_case_exact():
    assert quote_ident("CN1") == '"CN1"'


@pytest.mark.parametrize("value", ["", "a\x00b", "cn\n1", "cn\t1", "\x1b[31m", "a" * 64, "é" * 32, None, 1])
def test_quote_ident_rejects(value):
    with pytest.raises(InvalidName, match="^identifier:"):
        quote_ident(value)


def test_quote_ident_limit_is_in_bytes_not_characters():
    assert quote_ident("é" * 31) == '"' + "é" * 31 + '"'  # 62 bytes
    with pytest.raises(InvalidName, match="63 bytes"):
        quote_ident("é" * 32)  # 64 bytes: AntDB would truncate it


def test_quote_literal_doubles_single_quotes():
    assert quote_literal("127.0.10.1") == "'127.0.10.1'"
    assert quote_literal("it's") == "'it''s'"
    assert quote_literal("'; DROP TABLE x; --") == "'''; DROP TABLE x; --'"


def test_quote_literal_backslash_uses_escape_string_syntax():
    # E'' means the same whatever standard_conforming_strings says; a backslash followed by
    # a quote must not be able to end the literal early.
    assert quote_literal("a\\b") == "E'a\\\\b'"
    assert quote_literal("\\'; DROP TABLE x; --") == "E'\\\\''; DROP TABLE x; --'"


@pytest.mark.parametrize("value", ["a\x00b", "line\nbreak", "tab\there", "\x7f", "bell\x07", None, 5])
def test_quote_literal_rejects_control_characters_and_non_strings(value):
    with pytest.raises(InvalidName, match="^literal:"):
        quote_literal(value)


@pytest.mark.parametrize(
    "value",
    ["127.0.10.1", "127.0.0.1", "::1", "fe80::1", "::ffff:127.0.0.1", "localhost", "gc.pgouser1.svc.cluster.local"],
)
def test_require_host_accepts_addresses_and_dns_names(value):
    assert require_host(value, "node gc host") == value


@pytest.mark.parametrize(
    "value",
    [
        "'; DROP TABLE x; --",
        "",
        "127.0.0.256",
        "127.0.0",
        "127.000.0.1",
        "fe80::1%eth0",
        "gc svc",
        "GC.svc",
        "host:5432",
        "[::1]",
        "gc.pgouser1.svc\n",
        None,
        2130706433,
    ],
)
def test_require_host_rejects(value):
    with pytest.raises(InvalidName, match="^node gc host:"):
        require_host(value, "node gc host")


def test_require_host_explains_a_bad_ipv4_address():
    with pytest.raises(InvalidName, match="not a valid IPv4 address"):
        require_host("127.0.10.300", "node dn1 host")


@pytest.mark.parametrize("value,expected", [(5432, 5432), ("5432", 5432), (1, 1), (65535, 65535), ("00080", 80)])
def test_require_port_accepts(value, expected):
    assert require_port(value, "port") == expected


@pytest.mark.parametrize("value", [0, 65536, -1, "0", "65536", "", "54 32", "+5432", "5432\n", "٥٤٣٢", True, 5432.0, None])
def test_require_port_rejects(value):
    with pytest.raises(InvalidName, match="^node dn1 port:"):
        require_port(value, "node dn1 port")


def test_require_port_out_of_range_message():
    with pytest.raises(InvalidName, match=r"70000 is out of range \(1..65535\)"):
        require_port(70000, "port")


@pytest.mark.parametrize("value", ["smoke_test01", "_scratch", "a", "t" + "x" * 62])
def test_require_sql_identifier_accepts(value):
    assert require_sql_identifier(value, "table") == value


@pytest.mark.parametrize("value", ["", "1abc", "Test01", "test-01", "t" + "x" * 63, "a;drop", "a\n", "é", None])
def test_require_sql_identifier_rejects(value):
    with pytest.raises(InvalidName, match="^table:"):
        require_sql_identifier(value, "table")


def test_hostile_value_is_shortened_in_messages():
    with pytest.raises(InvalidName) as err:
        require_host("x" * 10_000 + "'", "host")
    assert len(str(err.value)) < 400
