"""Authentication over real TLS: kubectl and the Python client get in with the kubeconfig `kube-shim up`
writes (token or client certificate); anyone else gets a 401 Status, except on the health endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.typedefs import Middleware
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from shim.apiserver.auth import USER, UserInfo, authentication_middleware, load_token_file
from shim.kubeconfig import write_kubeconfig
from shim.pki import ADMIN_GROUP, ADMIN_USER, Pki, ensure_pki
from tests.cluster import Cluster
from tests.prerequisites import kubectl_path, needs_kubectl
from tests.rawapi import RawApi

KUBECTL = kubectl_path()

UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}
NODE_TOKENS_CSV = 'node-secret,system:node:worker-1,uid-1,"system:nodes,extra"\n\nblank-user,,uid-2\n'


@dataclass
class Server:
    pki: Pki
    url: str


async def list_namespaces(request: web.Request) -> web.Response:
    """A stand-in for the real handler: one namespace whose annotations say who asked."""
    user: UserInfo = request[USER]
    annotations = {"test/user": user.name, "test/groups": ",".join(user.groups)}
    namespace = {"metadata": {"name": "default", "annotations": annotations}, "status": {"phase": "Active"}}
    body = {
        "kind": "NamespaceList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "1"},
        "items": [namespace],
    }
    return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())


async def public(request: web.Request) -> web.Response:
    return web.Response(text=f"ok {request[USER].name}")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    pki = ensure_pki(tmp_path / "data", ["127.0.0.1"])
    token_file = tmp_path / "tokens.csv"
    token_file.write_text(NODE_TOKENS_CSV)
    tokens = {**load_token_file(token_file), pki.token: UserInfo(ADMIN_USER, (ADMIN_GROUP,))}
    async with _serving(pki, authentication_middleware(tokens)) as url:
        yield Server(pki, url)


@contextlib.asynccontextmanager
async def _serving(pki: Pki, middleware: Middleware) -> AsyncIterator[str]:
    """The dummy API over TLS with `pki`'s context on a free loopback port; yields its base URL."""
    app = web.Application(middlewares=[middleware])
    app.router.add_get("/api/v1/namespaces", list_namespaces)
    for path in ("/healthz", "/healthz/{check}", "/version", "/healthzfoo"):
        app.router.add_get(path, public)
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    await web.SockSite(runner, listener, ssl_context=pki.ssl_server_context()).start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        await runner.cleanup()


async def _kubectl(kubeconfig: Path, *args: str) -> tuple[int, str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(kubeconfig.parent)}
    process = await asyncio.create_subprocess_exec(
        str(KUBECTL),
        *args,
        "--kubeconfig",
        str(kubeconfig),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _annotations(namespace_list_json: str) -> dict[str, str]:
    return orjson.loads(namespace_list_json)["items"][0]["metadata"]["annotations"]


def _tls(pki: Pki, client_cert: Pki | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=pki.ca_cert_pem.decode())
    if client_cert is not None:
        context.load_cert_chain(client_cert.admin_cert_path, client_cert.admin_key_path)
    return context


@needs_kubectl
async def test_kubectl_gets_in_with_the_token_kubeconfig(server: Server, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kube" / "config"
    write_kubeconfig(kubeconfig, server.url, server.pki.ca_cert_pem, server.pki.token)

    code, out, err = await _kubectl(kubeconfig, "get", "--raw", "/api/v1/namespaces")

    assert code == 0, err
    assert _annotations(out) == {
        "test/user": "kube-shim-admin",
        "test/groups": "system:masters,system:authenticated",
    }


@needs_kubectl
async def test_kubectl_gets_in_with_the_client_certificate_kubeconfig(server: Server, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kube" / "config"
    pki = server.pki
    write_kubeconfig(
        kubeconfig,
        server.url,
        pki.ca_cert_pem,
        None,
        client_cert_pem=pki.admin_cert_pem,
        client_key_pem=pki.admin_key_pem,
    )

    code, out, err = await _kubectl(kubeconfig, "get", "--raw", "/api/v1/namespaces")

    assert code == 0, err
    assert _annotations(out) == {
        "test/user": "kube-shim-admin",
        "test/groups": "system:masters,system:authenticated",
    }


@needs_kubectl
async def test_kubectl_with_a_wrong_token_is_told_it_is_unauthorized(server: Server, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kube" / "config"
    write_kubeconfig(kubeconfig, server.url, server.pki.ca_cert_pem, "not-the-token")

    code, out, err = await _kubectl(kubeconfig, "get", "--raw", "/api/v1/namespaces")

    assert code != 0
    assert out == ""
    assert "Unauthorized" in err


@needs_kubectl
async def test_a_kubeconfig_written_after_a_restart_still_gets_in(server: Server, tmp_path: Path) -> None:
    restarted = ensure_pki(tmp_path / "data", ["127.0.0.1"])
    kubeconfig = tmp_path / "kube" / "config"
    write_kubeconfig(kubeconfig, server.url, restarted.ca_cert_pem, restarted.token)

    code, out, err = await _kubectl(kubeconfig, "get", "--raw", "/api/v1/namespaces")

    assert code == 0, err
    assert _annotations(out)["test/user"] == "kube-shim-admin"


async def test_the_python_client_lists_namespaces_with_the_written_kubeconfig(server: Server, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kube" / "config"
    write_kubeconfig(kubeconfig, server.url, server.pki.ca_cert_pem, server.pki.token)

    def list_namespaces_with_the_client() -> k8s_client.V1NamespaceList:
        api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        try:
            return k8s_client.CoreV1Api(api).list_namespace()
        finally:
            api.close()

    async with asyncio.timeout(60):
        namespaces = await asyncio.to_thread(list_namespaces_with_the_client)

    assert [ns.metadata.name for ns in namespaces.items] == ["default"]
    assert namespaces.items[0].metadata.annotations["test/user"] == "kube-shim-admin"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", "Bearer ", "Basic a3ViZTpzaGlt", "bearer"],
    ids=["none", "wrong-token", "empty-token", "basic", "scheme-only"],
)
async def test_requests_without_valid_credentials_get_a_401_status(server: Server, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/api/v1/namespaces", headers=headers, ssl=_tls(server.pki)) as response,
    ):
        assert response.status == 401
        assert response.content_type == "application/json"
        assert orjson.loads(await response.read()) == UNAUTHORIZED


async def test_the_bearer_scheme_is_case_insensitive(server: Server) -> None:
    headers = {"Authorization": f"bEaReR {server.pki.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/api/v1/namespaces", headers=headers, ssl=_tls(server.pki)) as response,
    ):
        assert response.status == 200


@pytest.mark.parametrize("path", ["/healthz", "/healthz/etcd", "/version"])
async def test_health_and_version_are_served_to_anonymous_callers(server: Server, path: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}{path}", ssl=_tls(server.pki)) as response,
    ):
        assert response.status == 200
        assert await response.text() == "ok system:anonymous"


async def test_a_path_that_only_starts_like_healthz_is_not_public(server: Server) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/healthzfoo", ssl=_tls(server.pki)) as response,
    ):
        assert response.status == 401


async def test_a_token_from_the_token_file_names_its_user_and_groups(server: Server) -> None:
    headers = {"Authorization": "Bearer node-secret"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/api/v1/namespaces", headers=headers, ssl=_tls(server.pki)) as response,
    ):
        assert response.status == 200
        assert _annotations(await response.text()) == {
            "test/user": "system:node:worker-1",
            "test/groups": "system:nodes,extra,system:authenticated",
        }


async def test_a_client_certificate_from_another_ca_is_refused(server: Server, tmp_path: Path) -> None:
    stranger = ensure_pki(tmp_path / "other-cluster", [])
    with pytest.raises(aiohttp.ClientError):
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.url}/api/v1/namespaces", ssl=_tls(server.pki, stranger)) as response,
        ):
            await response.read()


async def test_the_same_certificate_is_trusted_only_when_the_ca_is_verified(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, [])
    statuses = []
    for ca_verified in (True, False):
        async with (
            _serving(pki, authentication_middleware({}, ca_verified=ca_verified)) as url,
            aiohttp.ClientSession() as session,
            session.get(f"{url}/api/v1/namespaces", ssl=_tls(pki, pki)) as response,
        ):
            statuses.append(response.status)

    assert statuses == [200, 401]


def test_the_token_file_reads_users_uids_and_groups(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text(NODE_TOKENS_CSV + ",ignored,uid-3\nplain,alice,uid-4\n")

    assert load_token_file(path) == {
        "node-secret": UserInfo("system:node:worker-1", ("system:nodes", "extra"), "uid-1"),
        "blank-user": UserInfo("", (), "uid-2"),
        "plain": UserInfo("alice", (), "uid-4"),
    }


def test_a_token_file_row_with_too_few_columns_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text("token,user\n")

    with pytest.raises(ValueError, match="3 columns"):
        load_token_file(path)


async def test_impersonation_is_refused_rather_than_run_as_the_caller(cluster: Cluster) -> None:
    refused = cluster.kubectl("get", "pods", "--as", "jane", check=False)
    assert refused.returncode == 1 and "Error from server (Forbidden)" in refused.stderr
    raw = RawApi(cluster.kubeconfig)
    try:
        for headers, resource, name in (
            ({"Impersonate-User": "jane"}, "users", "jane"),
            ({"Impersonate-Group": "devs"}, "groups", "devs"),
        ):
            reply = await raw.call("GET", "/api/v1/namespaces/default/pods", headers=headers)
            assert reply.status == 403
            assert reply.json() == {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": f'{resource} "{name}" is forbidden: User "kube-shim-admin" cannot impersonate resource '
                f'"{resource}" in API group "" at the cluster scope',
                "reason": "Forbidden", "details": {"name": name, "kind": resource}, "code": 403,
            }  # fmt: skip
    finally:
        await raw.close()
