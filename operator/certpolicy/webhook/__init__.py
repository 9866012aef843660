"""The admission webhook of ``spec.enforcement`` (see docs/enforcement.md).

``policies`` (the CertificatePolicy index), ``decide`` (one decision from warm state),
``review`` (AdmissionReview in and out), ``server`` (HTTPS, every replica), ``serving`` (the
serving certificate and its CA), ``registration`` (the ValidatingWebhookConfiguration) and
``upkeep`` (what ties them together in ``certpolicy run``).
"""
