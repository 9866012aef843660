"""The operator's passes and their kopf glue.

Importing this package loads no kopf: ``certpolicy run``'s head start (``headstart.py``) runs the
first passes before kopf is imported. ``certpolicy.handlers.registry`` registers the kopf
handlers (``kopf run -m certpolicy.handlers.registry``).
"""
