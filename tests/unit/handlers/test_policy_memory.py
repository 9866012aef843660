"""What a policy loop remembers between passes is bounded like every engine cache."""

from __future__ import annotations

from certpolicy.handlers.runtime import MAX_STORE_READS, PolicyMemory
from certpolicy.pki import cache


def test_store_reads_is_a_bounded_registered_cache():
    memory = PolicyMemory()
    reads = memory.store_reads
    assert isinstance(reads, cache.FifoCache)
    assert reads in cache.registered()
    for i in range(MAX_STORE_READS + 10):
        reads.put(("ConfigMap", "ns", f"store-{i}", "truststore.p12", "pw", "password"), (("1", "2"), None))
    assert len(reads) == MAX_STORE_READS  # the oldest went first, not every entry at once
    assert ("ConfigMap", "ns", "store-0", "truststore.p12", "pw", "password") not in reads
    cache.clear_all()
    assert len(reads) == 0
