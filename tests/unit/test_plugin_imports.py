"""The kubectl plugin is a CLI: it must never load the operator's runtime (kopf, aiohttp).

Its verbs import some modules inside functions (to start fast), so importing the entry module
is not enough to prove it: the test follows every ``import`` statement, at module level or in a
function, from the plugin's modules through everything of certpolicy they reach, imports all of
it in a fresh interpreter, and looks at ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys

# Run in a subprocess: this test session has imported kopf already (other tests, conftest).
CLOSURE = r"""
import ast, importlib, importlib.util, json, pkgutil, sys

import certpolicy.plugin


def spec_of(name):
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return None


todo = [f"certpolicy.plugin.{m.name}" for m in pkgutil.iter_modules(certpolicy.plugin.__path__)]
seen = set()
while todo:
    name = todo.pop()
    spec = spec_of(name)
    if name in seen or spec is None or not (spec.origin or "").endswith(".py"):
        continue
    seen.add(name)
    for node in ast.walk(ast.parse(open(spec.origin).read())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("certpolicy"):
            todo.append(node.module)
            todo += [f"{node.module}.{a.name}" for a in node.names]  # a submodule, or a name (skipped)
        elif isinstance(node, ast.Import):
            todo += [a.name for a in node.names if a.name.startswith("certpolicy")]
before_entry = sorted(m for m in sys.modules if m.split(".")[0] in ("kopf", "aiohttp"))
import certpolicy.plugin.cli
certpolicy.plugin.cli.parser()  # every verb's module, as `kubectl certpolicy --help` loads them
entry = sorted(m for m in sys.modules if m.split(".")[0] in ("kopf", "aiohttp"))
for name in sorted(seen):
    importlib.import_module(name)
print(json.dumps({"reached": sorted(seen), "before": before_entry, "entry": entry,
                  "all": sorted(m for m in sys.modules if m.split(".")[0] in ("kopf", "aiohttp"))}))
"""


def test_the_plugin_and_everything_it_can_import_load_neither_kopf_nor_aiohttp():
    out = subprocess.run([sys.executable, "-c", CLOSURE], capture_output=True, text=True, check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert got["before"] == [] and got["entry"] == [], got["entry"]
    assert got["all"] == [], f"the plugin's imports load {got['all'][:5]}"
    # The walk sees imports made inside functions: the plugin imports these only there.
    assert {"certpolicy.environment", "certpolicy.policy.cahistory", "certpolicy.inventory.inventory"} <= set(
        got["reached"]), got["reached"]
    assert not any(m.startswith("certpolicy.handlers") for m in got["reached"]), \
        "the plugin reaches the kopf handlers package (its __init__ registers them with kopf)"
