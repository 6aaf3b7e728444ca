"""marshmallow error messages in the API's flat shape, and JSON bodies judged safe to read."""

from __future__ import annotations

import ipaddress
import json
import math
import re
import socket
from typing import Any, NoReturn

import idna


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as flat dotted keys: ``{"targets.0": ["..."]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == "_schema" and prefix:
                # marshmallow files a nested object's own problem under "_schema": name the object.
                flat.setdefault(prefix.rstrip("."), []).extend(flatten_errors(value).get("", []))
                continue
            flat.update(flatten_errors(value, f"{prefix}{key}."))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[prefix.rstrip(".")] = list(messages)
    elif isinstance(messages, list):
        for index, value in enumerate(messages):
            flat.update(flatten_errors(value, f"{prefix}{index}."))
    else:
        flat[prefix.rstrip(".")] = [str(messages)]
    return flat


# --- JSON bodies no API caller needs (DESIGN §13.1 "Input and settings") ---

MAX_JSON_DEPTH = 32


class UnsafeJSON(ValueError):
    """A JSON value that is well-formed but pathological: too deep, non-finite, lone surrogates."""


def _check_text(text: str, *, key: bool = False) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeJSON("strings must be valid Unicode (no lone surrogates)") from None
    if key and "\x00" in text:
        raise UnsafeJSON("object keys must not contain NUL characters")


def check_json_value(value: Any, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`UnsafeJSON` for a decoded JSON value no API body needs.

    Walks iteratively (a deep value cannot exhaust the stack): nesting deeper than
    ``max_depth``, NaN/Infinity, lone surrogates anywhere, NUL in object keys.
    Such values would otherwise fail later, in the database or a log line.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                raise UnsafeJSON(f"nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for name, child in item.items():
                    if not isinstance(name, str):
                        raise UnsafeJSON("object keys must be strings")
                    _check_text(name, key=True)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise UnsafeJSON("numbers must be finite")


def _refuse_constant(name: str) -> NoReturn:
    raise UnsafeJSON(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise UnsafeJSON("numbers must be finite")
    return number


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, child in pairs:
        if name in result:
            raise UnsafeJSON("an object key appears twice")
        result[name] = child
    return result


def loads_strict(raw: bytes | str) -> Any:
    """Parse JSON strictly (RFC 8259): no NaN/Infinity, no overflowing numbers, no
    duplicate keys, then :func:`check_json_value`. Any problem raises ``ValueError``."""
    try:
        value = json.loads(
            raw, parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=_no_duplicate_keys
        )
    except RecursionError:
        raise UnsafeJSON(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    check_json_value(value)
    return value


# --- Hosts Meta cannot fetch from (DESIGN §13.1, §13.5) ---

PRIVATE_SUFFIXES = (".local", ".localhost", ".internal", ".lan", ".home", ".corp", ".home.arpa")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IETF_PROTOCOL_ASSIGNMENTS = ipaddress.ip_network("192.0.0.0/24")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# The forms getaddrinfo and browsers read as IPv4: 1 to 4 parts, decimal, octal or hex.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a literal host names, read as getaddrinfo (inet_aton) would; else None.

    ``127.1``, ``0x7f.1``, ``0177.0.0.1`` and ``2130706433`` are all 127.0.0.1.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, ``::a.b.c.d``), if any.

    ``ipaddress`` calls NAT64, 6to4 and IPv4-compatible addresses global, so the
    carried address must be judged instead.
    """
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable unicast, judged on the IPv4 address an IPv6 one embeds."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL or address.teredo is not None:
            return False
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public_address(inner)
        if address.is_site_local:
            return False  # fec0::/10: deprecated, still routed inside some networks; ipaddress calls it global
    if address in _IETF_PROTOCOL_ASSIGNMENTS:
        return False  # 192.0.0.0/24: ipaddress (3.11) calls most of it global
    return address.is_global and not (address.is_multicast or address.is_unspecified or address.is_reserved)


def host_meta_cannot_reach(host: str) -> bool:
    """localhost-ish names and non-public addresses, on the normalised host. No DNS lookups:
    a name is judged only by what it literally says."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif not host.isascii():
        # What requests and browsers connect to: UTS #46 turns "127.0.0.\uff11" into 127.0.0.1.
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError:
            return True
    host = host.rstrip(".")  # "localhost." is localhost
    if not host or any(ch.isspace() or not ch.isprintable() or ch in "\\%/@" for ch in host):
        return True
    address = ip_literal(host)
    if address is not None:
        return not is_public_address(address)
    if ":" in host:  # not a valid IPv6 literal
        return True
    if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
        return True  # ends in a number yet is no IPv4 address: browsers refuse it too
    return host == "localhost" or host.endswith(PRIVATE_SUFFIXES) or "." not in host
