# The controller image (and the activator's: same image, `activator` instead of `run`):
# `autoscaler` as uid/gid 65532 on a read-only root filesystem, the project's wheel and its
# dependencies installed in /opt/venv, nothing else added to the base.
#
#   make image      # scripts/build-image.sh: podman, cached by a hash of the inputs
#
# The build context is not the repository: it is a folder holding wheels only, which
# scripts/build-image.sh makes (and the build needs no network):
#   deps/  binary wheels of the dependencies, for the base's Python and glibc
#   app/   the project's wheel (pip wheel --no-deps)
# BASE is any glibc image with python3 (>= 3.11) and its venv module. Default: the official
# slim image, for users with a registry; `make image` builds FROM a Debian base it makes with
# debootstrap instead (no registry needed). Both stages use the same base, so the venv's
# interpreter link (/usr/bin/python3 or /usr/local/bin/python3) exists in the runtime stage.

ARG BASE=python:3.11-slim

# -- builder: the dependencies, then the project's wheel, installed into a venv --------------
FROM ${BASE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1
# The dependencies first: this layer is reused for as long as they do not change.
COPY deps/ /wheels/deps/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --quiet --no-deps /wheels/deps/*.whl
COPY app/ /wheels/app/
# pip check: the wheel's requirements are all met by the dependencies installed above.
# pip and setuptools leave the venv last: the image holds the installed wheels only.
RUN /opt/venv/bin/pip install --quiet --no-deps /wheels/app/*.whl \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/pip uninstall --quiet --yes pip setuptools \
 && /opt/venv/bin/autoscaler --version

# -- runtime: the venv only; no pip, no compilers, no source tree ----------------------------
FROM ${BASE}
LABEL org.opencontainers.image.title="elastic-autoscaler" \
      org.opencontainers.image.description="Elastic autoscaler for AI workloads" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
# 65532: the conventional "nonroot" uid/gid; no home, no login shell, owns nothing.
USER 65532:65532
# 8080 metrics, 8081 health (controller); the activator serves 8080 (proxy) and 9091 (admin).
EXPOSE 8080 8081 9091
ENTRYPOINT ["autoscaler"]
CMD ["run", "--crd-pools", "--leader-elect", "--health-port", "8081", "--metrics-port", "8080"]
