"""What a condition, an event or the operator's log says about a failed pass: which request failed,
never Secret data (kube/rawapi.py ``redact``)."""

from __future__ import annotations

import base64
import json

from kubernetes.client import ApiException

import certgen
from certpolicy.handlers.reconcile import error_line, error_trace
from certpolicy.kube.rawapi import error_status, request_line


def test_an_api_error_names_the_request_and_the_servers_message():
    body = error_status(json.dumps({"kind": "Status", "code": 403, "reason": "Forbidden",
                                    "message": "ca-x: this CA Secret may not be created"}).encode(),
                        request_line("POST", "/api/v1/namespaces/ops/secrets", {"metadata": {"name": "ca-x"}}))
    line = error_line(ApiException(status=403, reason="Forbidden", body=body))
    assert line == ("ApiException: (403) POST /api/v1/namespaces/ops/secrets (name ca-x): "
                    "ca-x: this CA Secret may not be created")


def test_an_api_error_from_the_generated_client_is_redacted_too():
    pem = certgen.key_pem(certgen.new_key()).decode()
    raw = json.dumps({"kind": "Status", "message": f"denied: {pem}"})
    line = error_line(ApiException(status=400, reason="BadRequest", body=raw))
    assert line.startswith("ApiException: (400) denied: <redacted>") and "PRIVATE KEY" not in line
    assert error_line(ApiException(status=500, reason="Internal")) == "ApiException: (500) Internal"


def test_the_log_trace_has_the_frames_but_not_the_exceptions_text():
    pem = certgen.key_pem(certgen.new_key()).decode()
    b64 = base64.b64encode(pem.encode()).decode()

    def stage() -> None:
        try:
            raise ValueError(f"inner {pem}")
        except ValueError as e:
            raise RuntimeError(f"a bug reading {b64}") from e

    try:
        stage()
    except RuntimeError as e:
        trace = error_trace(e)
    assert trace.startswith("RuntimeError: a bug reading <redacted>\n")
    assert "in stage" in trace  # where it was raised
    assert "PRIVATE KEY" not in trace and b64[:40] not in trace and "inner" not in trace
