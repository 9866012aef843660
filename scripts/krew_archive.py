#!/usr/bin/env python3
"""Build the krew archive of ``kubectl certpolicy`` reproducibly and print its sha256.

The archive holds ``LICENSE`` (krew requires it) and ``plugins/kubectl-certpolicy``, a launcher for the Python package's console
script (krew installs binaries, and this plugin is Python); fixed mtimes, owners and order make the same inputs give the same bytes,
so ``plugins/certpolicy.yaml`` can carry its sha256 and a test can check it.

    scripts/krew_archive.py [OUT]     # default: dist/kubectl-certpolicy.tar.gz
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# krew requires the license in the archive (its manifest copies it with the binary).
FILES = (("kubectl-certpolicy", REPO / "plugins" / "kubectl-certpolicy", 0o755),
         ("LICENSE", REPO / "LICENSE", 0o644))


def archive() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, path, mode in FILES:
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = len(data), mode, 0, 0, 0, "", ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def main() -> int:
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "dist" / "kubectl-certpolicy.tar.gz"
    data = archive()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    print(hashlib.sha256(data).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())
