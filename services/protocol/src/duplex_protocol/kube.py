"""The components' Kubernetes API access, through the official asyncio client (kubernetes_asyncio).

Where the cluster is, found the standard way (``KubeConfig.detect``):
``DUPLEX_KUBE_URL`` (a plain URL without auth: an emulator, or ``kubectl
proxy``), else ``$KUBECONFIG``, else the pod's service account, else
``~/.kube/config``. A kubeconfig brings its contexts, client certificates
(kind), tokens and exec/auth plugins, which kubernetes_asyncio refreshes.

``KubeClient`` keeps duplex's small vocabulary over that client: create,
merge-patch, server-side apply, get, delete and watch on API paths. Only
merge-patches are used for what a component owns alone: single writers need
no compare-and-swap, and they work the same on emulators without PUT. The
operator applies the objects it owns with server-side apply, so a field
dropped from what it wants is removed, and fields other managers own stay.

kubernetes_asyncio is imported when a client is made, not with this module:
its package loads every API model (about 3 s on a small CPU), which a worker
or orchestrator without a cluster should not pay at each start.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient, Configuration

_SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
_DEFAULT_KUBECONFIG = "~/.kube/config"


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class KubeConfigError(ValueError):
    """The cluster configuration cannot be used (a missing context, a broken kubeconfig)."""


@dataclass(frozen=True)
class KubeConfig:
    """Which cluster, and how to reach it; resolved into a client configuration when used."""

    url: str = ""
    """A plain URL, no auth (``DUPLEX_KUBE_URL``: an emulator or ``kubectl proxy``)."""
    kubeconfig: str = ""
    """Kubeconfig file(s), ``:``-separated as in ``$KUBECONFIG``."""
    context: str = ""
    """Kubeconfig context; empty: its current-context."""
    in_cluster: bool = False

    @staticmethod
    def detect(kubeconfig: str = "", context: str = "") -> KubeConfig | None:
        """The cluster this process should use, or None when there is none to find.

        ``kubeconfig``/``context`` (flags) win; then ``DUPLEX_KUBE_URL``, ``$KUBECONFIG``,
        the pod's service account, and ``~/.kube/config``.
        """
        if kubeconfig:
            return KubeConfig(kubeconfig=kubeconfig, context=context)
        if url := os.environ.get("DUPLEX_KUBE_URL"):
            return KubeConfig(url=url.rstrip("/"))
        if paths := os.environ.get("KUBECONFIG"):
            return KubeConfig(kubeconfig=paths, context=context)
        if os.environ.get("KUBERNETES_SERVICE_HOST") and _SA_TOKEN.is_file() and not context:
            return KubeConfig(in_cluster=True)
        default = Path(_DEFAULT_KUBECONFIG).expanduser()
        if default.is_file():
            return KubeConfig(kubeconfig=str(default), context=context)
        return None

    def describe(self) -> str:
        """Where it points, for logs and errors (no secrets)."""
        if self.url:
            return self.url
        if self.in_cluster:
            return "in-cluster service account"
        context = f" context {self.context}" if self.context else ""
        return f"kubeconfig {self.kubeconfig}{context}"

    async def configuration(self) -> Configuration:
        """A kubernetes_asyncio client configuration (host, TLS, credentials)."""
        from kubernetes_asyncio.client import Configuration
        from kubernetes_asyncio.config import (
            ConfigException,
            load_incluster_config,
            load_kube_config,
        )

        config = Configuration()
        if self.url:
            config.host = self.url
            return config
        try:
            if self.in_cluster:
                load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
            else:
                await load_kube_config(
                    config_file=self.kubeconfig,
                    context=self.context or None,
                    client_configuration=config,
                    persist_config=False,
                )
        except (ConfigException, OSError) as exc:
            raise KubeConfigError(f"{self.describe()}: {exc}") from exc
        return config


async def bearer_token(config: Configuration) -> str:
    """The current bearer token (refreshed first by an exec/auth plugin); empty when none."""
    value = await config.get_api_key_with_prefix("BearerToken")
    return str(value or "").removeprefix("Bearer ").strip()


class KubeClient:
    def __init__(self, config: KubeConfig, timeout_s: float = 10.0) -> None:
        import kubernetes_asyncio.client  # noqa: F401  (the slow import, at setup, off the loop's hot path)

        self._config = config
        self._timeout = timeout_s
        self._api: ApiClient | None = None

    async def _client(self) -> ApiClient:
        from kubernetes_asyncio.client import ApiClient

        if self._api is None:
            self._api = ApiClient(await self._config.configuration())
        return self._api

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        deadline: float | aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        from kubernetes_asyncio.client.exceptions import ApiException

        api = await self._client()
        try:
            response: aiohttp.ClientResponse = await api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=deadline or self._timeout,
            )
        except ApiException as exc:
            raise KubeError(int(exc.status or 0), str(exc.reason or exc)[:300]) from exc
        if response.status >= 400:
            text = (await response.text())[:300]
            response.release()
            raise KubeError(response.status, text)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._request(method, path, **kwargs)
        try:
            data: dict[str, Any] = await response.json(content_type=None)
            return data
        finally:
            response.release()

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json("POST", path, body=body)

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json(
            "PATCH", path, body=body, content_type="application/merge-patch+json"
        )

    async def server_side_apply(
        self, path: str, body: dict[str, Any], field_manager: str
    ) -> dict[str, Any]:
        """Server-side apply (creates the object if absent); conflicts are forced: we own it."""
        return await self._json(
            "PATCH",
            path,
            body=body,  # sent as JSON, which is YAML
            query={"fieldManager": field_manager, "force": "true"},
            content_type="application/apply-patch+yaml",
        )

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        return await self._json("GET", path, query=params)

    async def delete(self, path: str) -> None:
        await self._json("DELETE", path)

    async def watch(self, path: str, **params: str) -> AsyncIterator[dict[str, Any]]:
        """Watch events ({"type", "object"}) until the server ends the stream."""
        query = {"watch": "true", "allowWatchBookmarks": "true", **params}
        no_total = aiohttp.ClientTimeout(total=None, sock_read=330)
        response = await self._request("GET", path, query=query, deadline=no_total)
        try:
            async for line in response.content:
                if line.strip():
                    event: dict[str, Any] = json.loads(line)
                    yield event
        finally:
            response.release()

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None


def leases_path(namespace: str, name: str = "") -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return f"{base}/{name}" if name else base
