# syntax=docker/dockerfile:1
# Multi-stage: wheels are built with the build tools in the first stage; the final image has only
# the interpreter, the installed packages and a non-root user. Works with a read-only root
# filesystem: no bytecode is written at run time and only /tmp (an emptyDir) is writable.
FROM python:3.12.8-slim-bookworm AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN python -m venv /opt/certpolicy \
 && /opt/certpolicy/bin/pip install --no-compile . \
 && /opt/certpolicy/bin/python -m compileall -q /opt/certpolicy/lib

FROM python:3.12.8-slim-bookworm
LABEL org.opencontainers.image.title="certpolicy-operator" \
      org.opencontainers.image.description="Validates TLS certificates against CertificatePolicies and rotates private CAs" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/certpolicy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=build /opt/certpolicy /opt/certpolicy
COPY crds/ /opt/certpolicy/crds/
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["certpolicy"]
CMD ["run"]
