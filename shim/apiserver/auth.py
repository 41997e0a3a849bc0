"""Authentication: who is calling. A verified client certificate or a bearer token names the user; anything
else gets 401, except the health and version endpoints, which anonymous callers may read.

Authorization (what that user may do) is a separate, later step that reads `request[USER]`.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from shim.apiserver.errors import status_response

AUTHENTICATED_GROUP = "system:authenticated"
# served without credentials, like kube-apiserver's system:public-info-viewer role allows
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")


@dataclass(frozen=True)
class UserInfo:
    """An authenticated (or anonymous) caller, as Kubernetes' user.Info: a name and the groups it is in."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""


USER: web.RequestKey[UserInfo] = web.RequestKey("user", UserInfo)

ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))


def authentication_middleware(tokens: Mapping[str, UserInfo], ca_verified: bool = True) -> Middleware:
    """An aiohttp middleware that puts the caller's `UserInfo` on `request[USER]` or answers 401.

    `tokens` maps bearer tokens to users. `ca_verified` says the TLS context checks client certificates
    against the cluster CA (`Pki.ssl_server_context` does); only then is a certificate's subject trusted.
    Every authenticated user is also in `system:authenticated`, as in kube-apiserver.
    """
    # keyed by SHA-256: the dict lookup then compares digests, so its timing says nothing about real tokens
    users_by_digest = {_digest(token): _authenticated(user) for token, user in tokens.items() if token}

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        user = (_certificate_user(request) if ca_verified else None) or _token_user(request, users_by_digest)
        if user is not None:
            request[USER] = user
        elif _is_public(request.path):
            request[USER] = ANONYMOUS
        else:
            return status_response(401, "Unauthorized", "Unauthorized")
        refused = _impersonation_refused(request, request[USER])
        if refused is not None:
            return refused
        return await handler(request)

    return authenticate


# header -> the resource kube's impersonation filter authorizes (`impersonate` on users, groups, uids)
_IMPERSONATION = (("Impersonate-User", "users"), ("Impersonate-Group", "groups"), ("Impersonate-Uid", "uids"))


def _impersonation_refused(request: web.Request, user: UserInfo) -> web.Response | None:
    """Without an authorizer nobody may act as someone else: refuse as kube does when `impersonate` is denied,
    rather than run the request as the caller while the client believes it ran as another user."""
    for header, resource in _IMPERSONATION:
        name = request.headers.get(header)
        if name is not None:
            message = (
                f'{resource} "{name}" is forbidden: User "{user.name}" cannot impersonate resource "{resource}" '
                'in API group "" at the cluster scope'
            )
            return status_response(403, "Forbidden", message, {"name": name, "kind": resource})
    return None


def load_token_file(path: Path) -> dict[str, UserInfo]:
    """Reads a kube-apiserver `--token-auth-file`: CSV rows `token,user,uid[,"group1,group2"]`."""
    tokens: dict[str, UserInfo] = {}
    with path.open(newline="") as file:
        for number, row in enumerate(csv.reader(file), start=1):
            if not row:
                continue
            if len(row) < 3:
                raise ValueError(f"{path}:{number}: expected at least 3 columns (token, user name, user uid)")
            token, name, uid = row[:3]
            groups = tuple(row[3].split(",")) if len(row) > 3 and row[3] else ()
            if token:
                tokens[token] = UserInfo(name, groups, uid)
    return tokens


def _token_user(request: web.Request, users_by_digest: Mapping[bytes, UserInfo]) -> UserInfo | None:
    # the same parsing as kube-apiserver's bearertoken authenticator: case-insensitive scheme, one token
    parts = request.headers.get("Authorization", "").strip().split(" ")
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return users_by_digest.get(_digest(parts[1]))


def _certificate_user(request: web.Request) -> UserInfo | None:
    """The user a CA-verified client certificate names: CN is the user, each O a group."""
    transport = request.transport
    peercert = transport.get_extra_info("peercert") if transport is not None else None
    if not peercert:
        return None
    names: list[str] = []
    groups: list[str] = []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names.append(value)
            elif key == "organizationName":
                groups.append(value)
    if not names or not names[0]:
        return None
    return _authenticated(UserInfo(names[0], tuple(groups)))


def _authenticated(user: UserInfo) -> UserInfo:
    if AUTHENTICATED_GROUP in user.groups:
        return user
    return UserInfo(user.name, (*user.groups, AUTHENTICATED_GROUP), user.uid)


def _is_public(path: str) -> bool:
    return any(path == public or path.startswith(public + "/") for public in PUBLIC_PATHS)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
