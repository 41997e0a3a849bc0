"""IP addresses, CIDRs and ports, as kube's validation checks them."""

from __future__ import annotations

import ipaddress
from typing import Any

from shim.apiserver.kinds.causes import Cause, invalid, required, unsupported
from shim.apiserver.kinds.meta import is_qualified_name

PROTOCOLS = ("SCTP", "TCP", "UDP")


def validate_ip(value: str, path: str) -> list[Cause]:
    """validation.IsValidIP."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return [invalid(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
    return []


def non_special_ip(value: str, path: str) -> list[Cause]:
    """ValidateNonSpecialIP: no unspecified, loopback or link-local addresses (endpoints, external IPs)."""
    ip = ipaddress.ip_address(value)
    causes = []
    if ip.is_unspecified:
        causes.append(invalid(path, value, f"may not be unspecified ({value})"))
    if ip.is_loopback:
        causes.append(invalid(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if ip.is_link_local:
        causes.append(invalid(path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    if ip in ipaddress.ip_network("224.0.0.0/24") or ip in ipaddress.ip_network("ff02::/16"):
        causes.append(invalid(path, value, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
    return causes


def validate_port_number(port: Any, path: str) -> list[Cause]:
    """validation.IsValidPortNum."""
    if isinstance(port, int) and 1 <= port <= 65535:
        return []
    return [invalid(path, port, "must be between 1 and 65535, inclusive")]


def validate_port_num_or_name(port: Any, path: str) -> list[Cause]:
    """ValidatePortNumOrName: an IntOrString naming or numbering a port."""
    if isinstance(port, str):
        return [invalid(path, port, m) for m in is_valid_port_name(port)]
    return validate_port_number(port, path)


def is_valid_port_name(name: str) -> list[str]:
    """validation.IsValidPortName (IANA_SVC_NAME)."""
    errs = ["must be no more than 15 characters"] if len(name) > 15 else []
    if not name or any(not (c.isascii() and (c.islower() or c.isdigit() or c == "-")) for c in name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not any("a" <= c <= "z" for c in name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def validate_cidr(value: str, path: str) -> list[Cause]:
    """validation.IsValidCIDR."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return [invalid(path, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]
    return []


def validate_protocols(port: Any, path: str) -> list[Cause]:
    """An endpoint port's `protocol` (required, one of PROTOCOLS) and `appProtocol` (a qualified name), as
    kube checks them for Endpoints and EndpointSlices."""
    causes: list[Cause] = []
    protocol = port.get("protocol")
    if not protocol:
        causes.append(required(path + ".protocol"))
    elif protocol not in PROTOCOLS:
        causes.append(unsupported(path + ".protocol", protocol, PROTOCOLS))
    app_protocol = port.get("appProtocol")
    if app_protocol is not None:
        causes.extend(invalid(path + ".appProtocol", app_protocol, m) for m in is_qualified_name(app_protocol))
    return causes
