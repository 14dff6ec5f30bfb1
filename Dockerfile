# The controller image: `autoscaler run` as a non-root user on a read-only root filesystem.
#
#   docker build -t ghcr.io/elastic-autoscaler/autoscaler:0.1.0 .
#
# Not built in this project's CI (its machines have no container engine); see
# docs/kubernetes.md. Both stages use the same base image, so the venv's interpreter path
# (/usr/local/bin/python3.11) exists in the runtime stage.

ARG PYTHON_IMAGE=python:3.11-slim

# -- builder: the project's wheel and its dependencies, installed into a venv ----------------
# Pure Python: no compiler needed.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY autoscaler ./autoscaler
COPY policies ./policies
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install /wheels/*.whl \
 && /opt/venv/bin/autoscaler --version

# -- runtime: the venv only; no compilers, no source tree ------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="elastic-autoscaler" \
      org.opencontainers.image.description="Elastic autoscaler for AI workloads" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
# 65532: the conventional "nonroot" uid/gid; no home, no login shell, owns nothing.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["autoscaler"]
CMD ["run", "--crd-pools", "--leader-elect", "--health-port", "8081", "--metrics-port", "8080"]
