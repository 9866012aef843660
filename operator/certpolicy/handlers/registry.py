"""Importing this module registers every kopf handler (``kopf run -m certpolicy.handlers.registry``)."""

from certpolicy.handlers import policy, settings  # noqa: F401  (registration by import)
