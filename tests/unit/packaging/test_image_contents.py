"""The operator's image leaves out certpolicy.localcluster (root-only development tooling), and
everything else works without it.

The image's wheel is built from a context filtered by .dockerignore; these tests check that the
filter names the package, and that with the package absent (an import of it fails, as in the
image) every other module imports and ``certpolicy local-cluster`` / ``demo`` say why they are
missing instead of raising.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from paths import REPO

WITHOUT_LOCALCLUSTER = textwrap.dedent("""
    import importlib, pkgutil, sys

    sys.modules["certpolicy.localcluster"] = None  # importing it raises ModuleNotFoundError, as in the image
    import certpolicy
""")


def run_without_localcluster(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_LOCALCLUSTER + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_dockerignore_leaves_the_local_cluster_tooling_out_of_the_build_context():
    lines = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert "operator/certpolicy/localcluster/" in lines
    assert "*" in lines and "!operator/" in lines  # an allow-list: nothing else comes in by accident


def test_every_other_module_imports_without_localcluster():
    proc = run_without_localcluster("""
        names = [m.name for m in pkgutil.walk_packages(certpolicy.__path__, "certpolicy.")
                 if not m.name.startswith("certpolicy.localcluster")]
        for name in names:
            importlib.import_module(name)
        print(len(names))
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout) > 50  # the walk found the package's modules


def test_local_cluster_and_demo_say_they_are_not_in_the_image():
    for command in ("local-cluster", "demo"):
        proc = run_without_localcluster(f"""
            from certpolicy.cli import main
            sys.exit(main([{command!r}]))
        """)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert "not in this installation" in proc.stderr and "Traceback" not in proc.stderr
