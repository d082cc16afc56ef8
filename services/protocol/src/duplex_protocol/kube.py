"""A minimal asyncio Kubernetes REST client, enough for Leases: create, patch, list, watch.

Configuration comes from ``DUPLEX_KUBE_URL`` (a plain URL: tests against an
emulator, or ``kubectl proxy``) or from the pod's service account (in-cluster
token and CA). Only merge-patches are used: single writers need no
compare-and-swap, and they work the same on emulators without PUT. The
operator applies the objects it owns with server-side apply, so a field
dropped from what it wants is removed, and fields other managers own stay.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

_SA = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class KubeConfig:
    url: str
    token: str = ""
    ca_file: str = ""

    @staticmethod
    def detect() -> KubeConfig | None:
        """``DUPLEX_KUBE_URL``, else the in-cluster service account, else None."""
        if url := os.environ.get("DUPLEX_KUBE_URL"):
            return KubeConfig(url.rstrip("/"))
        host, port = (
            os.environ.get("KUBERNETES_SERVICE_HOST"),
            os.environ.get("KUBERNETES_SERVICE_PORT"),
        )
        token = _SA / "token"
        if host and port and token.is_file():
            return KubeConfig(
                f"https://{host}:{port}", token.read_text().strip(), str(_SA / "ca.crt")
            )
        return None


class KubeClient:
    def __init__(self, config: KubeConfig, timeout_s: float = 10.0) -> None:
        self._config = config
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = (
                {"Authorization": f"Bearer {self._config.token}"} if self._config.token else {}
            )
            connector = None
            if self._config.ca_file:
                connector = aiohttp.TCPConnector(
                    ssl=ssl.create_default_context(cafile=self._config.ca_file)
                )
            self._session = aiohttp.ClientSession(
                self._config.url, headers=headers, connector=connector
            )
        return self._session

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        async with self._http().request(method, path, timeout=self._timeout, **kwargs) as response:
            if response.status >= 400:
                raise KubeError(response.status, (await response.text())[:300])
            data: dict[str, Any] = await response.json(content_type=None)
            return data

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json("POST", path, json=body)

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json(
            "PATCH",
            path,
            data=json.dumps(body),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    async def server_side_apply(
        self, path: str, body: dict[str, Any], field_manager: str
    ) -> dict[str, Any]:
        """Server-side apply (creates the object if absent); conflicts are forced: we own it."""
        return await self._json(
            "PATCH",
            path,
            data=json.dumps(body),  # JSON is YAML
            params={"fieldManager": field_manager, "force": "true"},
            headers={"Content-Type": "application/apply-patch+yaml"},
        )

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        return await self._json("GET", path, params=params)

    async def delete(self, path: str) -> None:
        await self._json("DELETE", path)

    async def watch(self, path: str, **params: str) -> AsyncIterator[dict[str, Any]]:
        """Watch events ({"type", "object"}) until the server ends the stream."""
        query = {"watch": "true", "allowWatchBookmarks": "true", **params}
        no_total = aiohttp.ClientTimeout(total=None, sock_read=330)
        async with self._http().get(path, params=query, timeout=no_total) as response:
            if response.status >= 400:
                raise KubeError(response.status, (await response.text())[:300])
            async for line in response.content:
                if line.strip():
                    event: dict[str, Any] = json.loads(line)
                    yield event

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def leases_path(namespace: str, name: str = "") -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return f"{base}/{name}" if name else base
