"""kopf glue: importing this package registers every handler (``kopf run -m certpolicy.handlers``)."""

from certpolicy.handlers import policy, settings  # noqa: F401  (registration by import)
