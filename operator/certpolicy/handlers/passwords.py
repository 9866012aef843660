"""The password Secrets of one pass, each read from the API at most once.

Several stages of a pass need the same password: the rotation stage reads every bundle target
back (its truststores opened with their passwords), then the bundles stage, or the rotation's
own ``UpdateBundles`` action, writes them; two entries may share one password Secret, and so
may the keystores of one namespace. A :class:`PasswordSecrets` belongs to one
:class:`~certpolicy.handlers.context.PassContext` and lives as long as the pass: the next pass
reads again, so a changed password is seen at once (the inventory wakes the policy for it).
A failed read is remembered too, so a missing or forbidden Secret costs one request per pass.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from kubernetes.client import ApiException

from certpolicy.environment import operator_namespace
from certpolicy.handlers.problems import Problem
from certpolicy.kube.managed import read
from certpolicy.kube.rawapi import RawClient


class PasswordSecrets:
    """Password Secrets read once per pass: a 404 is None, another API error is raised again on
    every later ask in the same pass without a second request."""

    def __init__(self, raw: RawClient) -> None:
        self._raw = raw
        self._read: dict[tuple[str, str], dict[str, Any] | ApiException | None] = {}

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        key = (namespace, name)
        if key not in self._read:
            try:
                self._read[key] = read(self._raw, "Secret", namespace, name)
            except ApiException as e:
                self._read[key] = e
        got = self._read[key]
        if isinstance(got, ApiException):
            raise got
        return got

    def truststore(self, ref: Mapping[str, str] | None) -> tuple[bytes | None, Problem | None]:
        """A bundle target's truststore password (``formats.<name>.passwordSecretRef``, a Secret
        in the operator's namespace): ``b""`` without a ref, None with the problem when it is
        missing or unusable. The problem names the Secret and key, never the password."""
        if not ref:
            return b"", None
        obj = self.get(operator_namespace(), ref["name"])
        where = f"Secret {operator_namespace()}/{ref['name']} key {ref['key']}"
        if obj is None or ref["key"] not in (obj.get("data") or {}):
            return None, Problem("TruststorePasswordMissing", f"the truststore password {where} does not exist")
        try:
            password = base64.b64decode(obj["data"][ref["key"]]).rstrip(b"\r\n")
        except (binascii.Error, ValueError):
            return None, Problem("TruststorePasswordMissing", f"the truststore password {where} is not valid base64")
        try:
            password.decode("utf-8")
        except UnicodeDecodeError:
            return None, Problem("TruststorePasswordInvalid", f"the truststore password {where} is not valid UTF-8 "
                                                              "(PKCS#12 passwords are text); the truststore is not "
                                                              "written until it is, the PEM bundle is")
        return password, None
