"""A small REST client base used by every module's ``client.py`` (no Flask here).

Errors from the server's problem documents become ROSACE exceptions:
409 -> ConflictError, 404 -> NotFoundError, other 4xx/5xx -> ApiError; a server
that does not answer -> ServiceUnavailable. Every call has a timeout.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from rosace_core.errors import ConflictError, NotFoundError, RosaceError


class ApiError(RosaceError):
    """The server answered with an error (problem document in ``problem``)."""

    def __init__(self, status: int, problem: dict):
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or ""
        errors = problem.get("errors") or []
        if errors:
            detail += ": " + "; ".join(f"{e.get('field', '')}: {e.get('message', '')}" for e in errors)
        super().__init__(f"HTTP {status}: {detail}")


class ServiceUnavailable(RosaceError):
    """The module's server could not be reached (down, wrong URL, network)."""


class RestClient:
    """Base client for a module REST API at ``base_url`` (e.g. http://127.0.0.1:8701)."""

    module = ""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()

    @property
    def api(self) -> str:
        return f"{self.base_url}/api/v1/{self.module}" if self.module else f"{self.base_url}/api/v1"

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None, timeout: float | None = None,
                raw: bool = False, files: dict | None = None, data: dict | None = None):
        """Call ``method`` on ``path`` (relative to the module's API root); return decoded JSON.

        ``files``/``data`` send a multipart form instead of a JSON body (uploads).
        """
        url = path if path.startswith("http") else f"{self.api}{path}"
        try:
            resp = self.session.request(method, url, json=json, params=params, files=files, data=data, headers=self._headers(), timeout=timeout or self.timeout)
        except requests.RequestException as exc:
            raise ServiceUnavailable(f"{self.module or 'server'} at {self.base_url} unreachable: {exc.__class__.__name__}") from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {"title": resp.reason, "detail": resp.text[:200]}
            if resp.status_code == 409:
                extra = [f"{k}={v}" for k, v in body.items() if k not in ("type", "title", "status", "detail", "reasons")]
                raise ConflictError(body.get("detail") or "conflict", body.get("reasons") or extra)
            if resp.status_code == 404:
                raise NotFoundError(body.get("detail") or "not found")
            raise ApiError(resp.status_code, body)
        if raw:
            return resp
        if not resp.content:
            return None
        return resp.json()

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw):
        return self.request("POST", path, json=json if json is not None else {}, **kw)

    def put(self, path: str, json: Any = None, **kw):
        return self.request("PUT", path, json=json if json is not None else {}, **kw)

    def delete(self, path: str, **kw):
        return self.request("DELETE", path, **kw)

    def health(self) -> dict:
        """Return the server's health document (raises ServiceUnavailable if down)."""
        return self.request("GET", f"{self.base_url}/api/v1/health")

    def wait_until_up(self, timeout: float = 20.0) -> dict:
        """Poll health until the server answers; raise ServiceUnavailable after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.health()
            except ServiceUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def job(self, job_id: str) -> dict:
        return self.get(f"/jobs/{job_id}")

    def wait_job(self, job_id: str, timeout: float = 300.0, poll: float = 0.2) -> dict:
        """Poll a job until it is done; return its final document."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in ("succeeded", "failed", "aborted"):
                return job
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"job {job_id} still {job['state']} after {timeout} s")
            time.sleep(poll)
