# syntax=docker/dockerfile:1
# Multi-stage: wheels are built with the build tools in the first stage; the final image has only
# the interpreter, the installed packages and a non-root user. Works with a read-only root
# filesystem: no bytecode is written at run time and only /tmp (an emptyDir) is writable.
# .dockerignore leaves certpolicy/localcluster (root-only development tooling) out of the context,
# so out of the wheel built here.
#
# Python 3.11: the minor version the tests and CI run on (and Debian bookworm's python3). Any
# Debian-based image with python3.11, `python` and the venv module works as BASE_IMAGE; the e2e
# tests build this file from a Debian-package base made locally (certpolicy/localcluster/images.py).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN python -m venv /opt/certpolicy \
 && /opt/certpolicy/bin/pip install --no-compile . \
 && /opt/certpolicy/bin/python -m compileall -q /opt/certpolicy/lib

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="certpolicy-operator" \
      org.opencontainers.image.description="Validates TLS certificates against CertificatePolicies and rotates private CAs" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/certpolicy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# A user for the default UID (a name in ps and logs). Not required: `certpolicy run` gives kopf
# an explicit identity, so any UID works, with or without a passwd entry (OpenShift assigns one
# from the namespace's range).
RUN groupadd --gid 65532 certpolicy \
 && useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin certpolicy
COPY --from=build /opt/certpolicy /opt/certpolicy
COPY crds/ /opt/certpolicy/crds/
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["certpolicy"]
CMD ["run"]
