"""The engine's caches: bounded, first-in-first-out, and all cleared or swept from one place."""

import subprocess
import sys

import certgen
from certpolicy.pki import cache
from certpolicy.pki.cache import FifoCache, Live
from certpolicy.pki.fingerprint import fingerprint
from certpolicy.pki.inspect import summarize
from certpolicy.pki.load import load_certificates


def test_eviction_is_first_in_first_out():
    c: FifoCache[str, int] = FifoCache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # a hit does not reorder
    c.put("c", 3)
    assert "a" not in c and c.get("b") == 2 and c.get("c") == 3 and len(c) == 2


def test_one_sweep_drops_what_is_no_longer_live_from_every_registered_cache():
    kept, gone = certgen.root("cache kept"), certgen.root("cache gone")
    for ca in (kept, gone):
        summarize(load_certificates(certgen.pem(ca)).certificates[0])
    live = Live(frozenset({fingerprint(kept.cert)}), frozenset())
    assert cache.sweep(live) > 0
    summaries = next(c for c in cache.registered() if c.name == "summaries")
    assert fingerprint(kept.cert) in summaries and fingerprint(gone.cert) not in summaries
    cache.clear_all()
    assert all(len(c) == 0 for c in cache.registered())


def test_an_unregistered_cache_is_left_alone():
    mine: FifoCache[str, int] = FifoCache(4)
    mine.put("x", 1)
    cache.sweep(Live())
    cache.clear_all()
    assert mine.get("x") == 1 and mine not in cache.registered()


def test_loading_certificates_does_not_import_the_summaries_module():
    """pki.load and pki.inspect no longer import each other: fingerprints and key descriptions
    have modules of their own."""
    code = "import sys, certpolicy.pki.load; print('certpolicy.pki.inspect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
