"""JSON in, JSON out over the official client's connection pool and credentials.

The generated models of the ``kubernetes`` client are convenient for a single object but cost
tens of microseconds per field when 10,000 Secrets are listed; the inventory reads plain JSON
instead (as ``kubectl`` does) and keeps only what it needs. Authentication, TLS and proxies are
still the client's own (``ApiClient.param_serialize`` + ``call_api``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from kubernetes.client import ApiClient, ApiException

from certpolicy.kube.writegate import WRITE_GATE

MAX_ERROR_MESSAGE = 500
#: Ask for ``PartialObjectMetadata`` instead of whole objects: names, versions, labels and
#: annotations only (a Secret's data never crosses the wire). Lists, and one object or a watch.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA_ONLY_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
# PEM blocks and long base64 runs: what Secret data looks like if an error message echoes it.
_SECRETISH = re.compile(r"-----BEGIN [^-]*-----.*?(?:-----END [^-]*-----|$)|[A-Za-z0-9+/=]{48,}", re.S)


def redact(text: str) -> str:
    """``text`` with PEM blocks and long base64 runs cut out, and at most MAX_ERROR_MESSAGE long:
    what may go from an error into a log line, an event or a status condition."""
    return _SECRETISH.sub("<redacted>", text)[:MAX_ERROR_MESSAGE]


def error_status(data: bytes, request: str | None = None) -> str:
    """The parts of an error response that may travel on in an exception (and so into logs,
    events and status): the Status's code, reason and message, with anything that looks like
    key or Secret data cut out. Never the raw body — a write's error could come from an admission
    webhook that echoes the object it refused, Secret data included. ``request``: what was asked
    (verb, path, the name of an object created), so a message says which object failed."""
    try:
        status = json.loads(data)
    except ValueError:
        status = None
    if not isinstance(status, dict) or status.get("kind") != "Status":
        out: dict[str, Any] = {"kind": "Status", "message": "(a non-Status error body, not shown)"}
    else:
        out = {"kind": "Status", "code": status.get("code"), "reason": status.get("reason"),
               "message": redact(str(status.get("message") or ""))}
    if request:
        out["request"] = request
    return json.dumps(out)


def api_error_text(error: ApiException) -> str:
    """``(code) request: message`` of an API error (its body as :func:`error_status` left it, redacted
    again in case the exception came from the generated client), e.g. ``(403) POST
    /api/v1/namespaces/ops/secrets (name x): secrets is forbidden: ...``: which object, which verb."""
    try:
        status = json.loads(error.body or "")
    except (TypeError, ValueError):
        status = None
    if not isinstance(status, dict):
        return f"({error.status}) {error.reason or ''}".rstrip()
    where = status.get("request") or ""
    what = status.get("message") or error.reason or ""
    return redact(f"({error.status}) {where}{': ' if where and what else ''}{what}")


def request_line(method: str, path: str, body: object) -> str:
    """``VERB path`` of a request, with the object's name when it is a create (its path has none)."""
    name = ((body.get("metadata") or {}).get("name") if method == "POST" and isinstance(body, Mapping) else None)
    return f"{method} {path}" + (f" (name {name})" if name else "")


class RawClient:
    """``gated``: writes ask the process's write gate first (see ``kube.writegate``); only the
    Lease elector's own client is ungated."""

    def __init__(self, api_client: ApiClient, *, gated: bool = True) -> None:
        self.api_client = api_client
        self.gated = gated

    def _call(self, method: str, path: str, query: Mapping[str, Any] | None, body: object = None,
              content_type: str = "application/json", timeout: float | tuple[float, float] | None = 60,
              accept: str = "application/json"):
        if self.gated:
            WRITE_GATE.check(method, path)
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        _method, url, headers, body, post = self.api_client.param_serialize(
            method=method, resource_path=path, query_params=params, header_params=headers,
            body=body, auth_settings=["BearerToken"],
        )
        resp = self.api_client.call_api(_method, url, header_params=headers, body=body, post_params=post,
                                        _request_timeout=timeout)
        if not 200 <= resp.status < 300:
            raise ApiException(status=resp.status, reason=resp.reason,
                               body=error_status(resp.read(), request_line(method, path, body)))
        return resp

    def get(self, path: str, query: Mapping[str, Any] | None = None, timeout: float = 60,
            accept: str = "application/json") -> dict:
        return json.loads(self._call("GET", path, query, timeout=timeout, accept=accept).read())

    def patch(self, path: str, body: object, content_type: str = "application/merge-patch+json",
              query: Mapping[str, Any] | None = None) -> dict:
        return json.loads(self._call("PATCH", path, query, body=body, content_type=content_type).read())

    def post(self, path: str, body: object, query: Mapping[str, Any] | None = None, timeout: float = 60) -> dict:
        return json.loads(self._call("POST", path, query, body=body, timeout=timeout).read())

    def put(self, path: str, body: object, query: Mapping[str, Any] | None = None, timeout: float = 60) -> dict:
        return json.loads(self._call("PUT", path, query, body=body, timeout=timeout).read())

    def delete(self, path: str, query: Mapping[str, Any] | None = None, body: object = None) -> dict:
        """``body``: DeleteOptions, e.g. preconditions on uid and resourceVersion."""
        return json.loads(self._call("DELETE", path, query, body=body).read())

    def watch(self, path: str, query: Mapping[str, Any], timeout: tuple[float, float], on_open=None,
              accept: str = "application/json") -> Iterator[dict]:
        """Yield watch events (``{"type": ..., "object": ...}``) until the server ends the stream."""
        resp = self._call("GET", path, dict(query, watch="true"), timeout=timeout, accept=accept)
        raw = resp.response
        if on_open:
            on_open(raw)
        try:
            buf = b""
            for chunk in raw.stream(64 * 1024, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
            if buf.strip():
                yield json.loads(buf)
        finally:
            raw.release_conn()
