"""``kubectl certpolicy``: read-only questions about a cluster's certificates, from a terminal.

``kubectl-certpolicy`` on ``PATH`` makes it a kubectl plugin. Every verb reads the cluster (never
writes), prints a table or, with ``-o json``, a JSON document, and reuses the operator's own
engine (``pki/``, ``policy/``): a verdict here is the verdict the operator would reach.
"""
