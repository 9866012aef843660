"""Every write the operator sends goes through ``certpolicy/kube`` (issue 24): an AST check.

``docs/architecture.md`` says writes go through ``kube/managed.py`` (objects of a policy or of the
install) or the kube module of the operator's own record (status, events, Lease). So
no module outside ``certpolicy/kube`` may call ``post``/``put``/``patch``/``delete`` on a
``RawClient`` (any receiver named ``raw``, ``ctx.raw``, ``self.raw``, ...) nor a write method of
the official client's ``*Api`` classes; and CA Secrets are written by one module only,
``handlers/castore.py``.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
from pathlib import Path

import kubernetes.client

import certpolicy

PACKAGE = Path(certpolicy.__file__).parent
KUBE = PACKAGE / "kube"
RAW_WRITES = {"post", "put", "patch", "delete"}
#: Write methods of the official client (create_namespaced_secret, patch_namespaced_deployment, ...).
CLIENT_WRITES = {name for cls_name, api in inspect.getmembers(kubernetes.client, inspect.isclass)
                 if cls_name.endswith("Api") for name in dir(api)
                 if name.split("_", 1)[0] in ("create", "patch", "replace", "delete")}
#: The managed.py writers of CA Secrets; only the CA store may use them.
CA_WRITERS = {"create_managed_secret", "update_managed_secret", "delete_managed_secret", "adopt_object",
              "write_issuer_ca_secret"}
CA_STORE = PACKAGE / "handlers" / "castore.py"


def _receiver(node: ast.expr) -> str:
    """``ctx.raw`` for ``ctx.raw.post``: the dotted name of what a method is called on."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_receiver(node.value)}.{node.attr}"
    return "?"


def writes_outside_kube(source: str) -> list[str]:
    """The API writes a module's source sends itself, as ``line: call``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        method, receiver = node.func.attr, _receiver(node.func.value)
        if method in RAW_WRITES and receiver.split(".")[-1].lstrip("_") == "raw":
            found.append(f"{node.lineno}: {receiver}.{method}")
        elif method in CLIENT_WRITES:
            found.append(f"{node.lineno}: {receiver}.{method}")
    return found


def ca_writes(source: str) -> list[str]:
    """Uses of the CA writers, and managed writes with ``role=ROLE_CA``, in a module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        name = (node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute)
                else node.name if isinstance(node, ast.alias) else None)
        if name in CA_WRITERS:
            found.append(f"{node.lineno}: {name}")
        if isinstance(node, ast.Call) and any(k.arg == "role" and isinstance(k.value, ast.Name)
                                              and k.value.id == "ROLE_CA" for k in node.keywords):
            found.append(f"{node.lineno}: a write with role=ROLE_CA")
    return found


def _modules(outside: Path | None = None) -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if outside is None or outside not in p.parents]


def test_the_detectors_see_the_writes_they_must_refuse():
    """Not vacuous: the raw writes rotation.py and deletion.py sent before issue 24, and the
    client's write methods, are found; reads and the event recorder's post are not."""
    assert "create_namespaced_secret" in CLIENT_WRITES and "patch_namespaced_deployment" in CLIENT_WRITES
    assert len(writes_outside_kube(
        "ctx.raw.delete(p)\nraw.post(p, b)\nself.raw.put(p, b)\nself._raw.patch(p, b)\n"
        "core.create_namespaced_secret(ns, s)\napi.patch_cluster_custom_object(g, v, p, n, b)\n")) == 6
    assert writes_outside_kube("ctx.raw.get(p)\nctx.recorder.post(o)\nstore.put(k, v)\nstore.delete(o)\n") == []
    assert len(ca_writes("from certpolicy.kube.managed import create_managed_secret\n"
                         "write_managed_secret(raw, ns, n, o, d, role=ROLE_CA)\n")) == 2


def test_before_issue_24_the_check_failed():
    """The check would have caught what issue 24 names: the raw CA Secret create and delete in
    handlers/rotation.py and the delete in handlers/deletion.py, as they were at its filing."""
    before = "4fb463e"
    for path in ("operator/certpolicy/handlers/rotation.py", "operator/certpolicy/handlers/deletion.py"):
        shown = subprocess.run(["git", "show", f"{before}:{path}"], cwd=PACKAGE, capture_output=True, text=True)
        if shown.returncode != 0:  # not a git checkout (an sdist): nothing to compare with
            return
        assert writes_outside_kube(shown.stdout), path


def test_no_module_outside_kube_writes_to_the_api_itself():
    offenders = {str(p.relative_to(PACKAGE)): found for p in _modules(outside=KUBE)
                 if (found := writes_outside_kube(p.read_text()))}
    assert offenders == {}, "write through certpolicy/kube (managed.py), see docs/architecture.md"


def test_ca_secrets_are_written_by_the_ca_store_only():
    offenders = {str(p.relative_to(PACKAGE)): found for p in _modules() if p != CA_STORE and KUBE not in p.parents
                 if (found := ca_writes(p.read_text()))}
    assert offenders == {}, "CA Secrets are written through ctx.cas (handlers/castore.py) only"
    assert ca_writes(CA_STORE.read_text()), "the CA store is where CA Secrets are written"
