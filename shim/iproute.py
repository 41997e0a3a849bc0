"""iproute2's `ip`, run one way: its output, or IpError naming the command and what `ip` said."""

from __future__ import annotations

import json
import subprocess
from typing import Any

IP_TIMEOUT = 10.0  # seconds any `ip` command may take


class IpError(Exception):
    """`ip` could not run or refused; the message names the command and says why."""


def ip(*args: str) -> str:
    """The output of `ip ARGS` (blocking: run it in a thread from async code)."""
    command = ["ip", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IpError(f"cannot run {' '.join(command)}: {exc}") from None
    if done.returncode != 0:
        raise IpError(f"{' '.join(command)}: {done.stderr.strip() or f'exit code {done.returncode}'}")
    return done.stdout


def ip_json(*args: str) -> list[dict[str, Any]]:
    """The objects `ip -j ARGS` lists."""
    try:
        listed = json.loads(ip("-j", *args) or "[]")
    except ValueError as exc:
        raise IpError(f"ip -j {' '.join(args)} printed no JSON: {exc}") from None
    return [item for item in listed if isinstance(item, dict)] if isinstance(listed, list) else []
