"""Validation of the names and literals that end up in manifests and SQL.

Everything the product splices into a Kubernetes object name or an SQL statement passes
through here first, so that a malformed conf or a tampered catalog row fails loudly with
the offending field named, instead of producing a broken manifest or an injectable
statement. Node DDL (`CREATE NODE ... WITH (...)`) cannot take bind parameters, which is
why identifiers and literals are quoted by hand, and why the quoting is strict.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
# NAMEDATALEN - 1: PostgreSQL (and AntDB) truncate longer identifiers silently, which would
# make a registered node name differ from the node's own pgxc_node_name.
IDENTIFIER_MAX_BYTES = 63

_DNS1123_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SQL_IDENTIFIER_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_DIGITS_RE = re.compile(r"[0-9]+")
_NUMERIC_DOTTED_RE = re.compile(r"[0-9.]+")

LABEL_RULE = "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
SUBDOMAIN_RULE = "dot-separated DNS-1123 labels (" + LABEL_RULE + "), at most 253 characters in total"


class InvalidName(ValueError):
    """A name or literal that is not safe to use; the message names the field and the rule."""


def _describe(value: object) -> str:
    """repr() of a value, shortened so a hostile megabyte string can't flood a log."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _require_str(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidName(f"{field}: expected a string, got {type(value).__name__} {_describe(value)}")
    return value


def is_dns1123_label(s: object) -> bool:
    """True for a Kubernetes object name of the strictest kind (namespaces, Services, Pgclusters)."""
    return isinstance(s, str) and len(s) <= DNS1123_LABEL_MAX and bool(_DNS1123_LABEL_RE.fullmatch(s))


def is_dns1123_subdomain(s: object) -> bool:
    """True for a DNS-1123 subdomain, e.g. a Service's `name.namespace.svc.cluster.local`."""
    if not isinstance(s, str) or not s or len(s) > DNS1123_SUBDOMAIN_MAX:
        return False
    return all(is_dns1123_label(part) for part in s.split("."))


def require_dns1123_label(value: object, field: str) -> str:
    """Return `value` if it is a DNS-1123 label, else raise InvalidName naming `field`."""
    text = _require_str(value, field)
    if not is_dns1123_label(text):
        raise InvalidName(f"{field}: {_describe(text)} is not a DNS-1123 label ({LABEL_RULE})")
    return text


def require_dns1123_subdomain(value: object, field: str) -> str:
    """Return `value` if it is a DNS-1123 subdomain, else raise InvalidName naming `field`."""
    text = _require_str(value, field)
    if not is_dns1123_subdomain(text):
        raise InvalidName(f"{field}: {_describe(text)} is not a DNS-1123 subdomain ({SUBDOMAIN_RULE})")
    return text


def _is_printable(text: str) -> bool:
    """No control, format, surrogate or unassigned characters (category C*); spaces are allowed."""
    return all(not unicodedata.category(ch).startswith("C") for ch in text)


def quote_ident(name: object) -> str:
    """Double-quote an AntDB identifier (a node name) for node DDL.

    Node names come from Kubernetes and are DNS-1123 labels, but a name read back from a
    catalog is not trusted: it is validated and quoted regardless. Quoting also keeps the
    name case-exact, which is what `pgxc_node_name` matching requires.
    """
    text = _require_str(name, "identifier")
    if not text:
        raise InvalidName("identifier: must not be empty")
    if len(text.encode("utf-8")) > IDENTIFIER_MAX_BYTES:
        raise InvalidName(
            f"identifier: {_describe(text)} is longer than {IDENTIFIER_MAX_BYTES} bytes; AntDB would truncate it"
        )
    if "\x00" in text or not _is_printable(text):
        raise InvalidName(f"identifier: {_describe(text)} contains NUL or control characters")
    return '"' + text.replace('"', '""') + '"'


def quote_literal(value: object) -> str:
    """Single-quote a string literal for statements that cannot take bind parameters.

    Control characters (NUL included) are rejected. A value containing a backslash is
    rendered as an escape string `E'...'` with the backslash doubled: that form means the
    same thing whether or not `standard_conforming_strings` is on, so a backslash can never
    turn into an escaped quote and end the literal early.
    """
    text = _require_str(value, "literal")
    if not _is_printable(text):
        raise InvalidName(f"literal: {_describe(text)} contains NUL or control characters")
    body = text.replace("'", "''")
    if "\\" in text:
        return "E'" + body.replace("\\", "\\\\") + "'"
    return "'" + body + "'"


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        return None  # a zone id (`fe80::1%eth0`) is free text and means nothing off this host
    return address


def require_host(value: object, field: str) -> str:
    """Return `value` if it is an IPv4/IPv6 address or a DNS-1123 subdomain (a Service name).

    The value is returned as given (not normalised) so that comparing it with
    `pgxc_node.node_host` is a plain string comparison. Dotted all-numeric strings that are
    not valid IPv4 addresses (`127.0.0.256`) are rejected although they are syntactically
    DNS names: they are always a typo for an address.
    """
    text = _require_str(value, field)
    if _ip_address(text) is not None:
        return text
    if _NUMERIC_DOTTED_RE.fullmatch(text):
        raise InvalidName(f"{field}: {_describe(text)} is not a valid IPv4 address")
    if not is_dns1123_subdomain(text):
        raise InvalidName(
            f"{field}: {_describe(text)} is neither an IPv4/IPv6 address nor a DNS-1123 subdomain ({SUBDOMAIN_RULE})"
        )
    return text


def require_port(value: object, field: str) -> int:
    """Return a TCP port 1..65535 from an int or a string of ASCII digits."""
    if isinstance(value, bool):
        raise InvalidName(f"{field}: expected a port number, got a boolean")
    if isinstance(value, str):
        if not _DIGITS_RE.fullmatch(value):
            raise InvalidName(f"{field}: {_describe(value)} is not a port number (digits only)")
        port = int(value)
    elif isinstance(value, int):
        port = value
    else:
        raise InvalidName(f"{field}: expected a port number, got {type(value).__name__} {_describe(value)}")
    if not 1 <= port <= 65535:
        raise InvalidName(f"{field}: {port} is out of range (1..65535)")
    return port


def require_sql_identifier(value: object, field: str) -> str:
    """Return `value` if it is a plain lowercase SQL identifier (scratch tables and the like).

    Stricter than `quote_ident` on purpose: such names are chosen by us or a user and are
    also used unquoted in messages, so only `^[a-z_][a-z0-9_]{0,62}$` is accepted.
    """
    text = _require_str(value, field)
    if not _SQL_IDENTIFIER_RE.fullmatch(text):
        raise InvalidName(
            f"{field}: {_describe(text)} is not a plain SQL identifier "
            "(lowercase letters, digits and '_', not starting with a digit, at most 63 characters)"
        )
    return text
