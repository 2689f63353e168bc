# OpsResponder: one container, both APIs, syslog and SNMP listeners.
# There is no Docker engine on the development machines; keep this file simple and obviously correct.
# `hadolint Dockerfile` runs in the test suite (tests/unit/test_packaging.py).

# The base image by digest, so a rebuild gets the same Python and Debian. The digest is python:3.11-slim's
# multi-arch index; refresh it with `docker buildx imagetools inspect python:3.11-slim` (first line).
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH=/opt/venv/bin:$PATH \
    OPSRESPONDER_DATA_DIR=/data

# libcap2-bin: setcap, so the unprivileged user can bind 514 and 162 (CAP_NET_BIND_SERVICE on the
# interpreter only; Docker's default capability set allows it). Its version is not pinned (DL3008):
# Debian's archive keeps only the current version of a stable release, so a pinned one stops installing
# at the next point release; the base image's digest fixes the release, and setcap's behaviour is stable.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcap2-bin \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin opsresponder \
    && mkdir -p /data && chown 10001:10001 /data

# Dependencies from uv.lock, the same locked versions the tests ran with; `--locked` fails the build when
# pyproject.toml and the lock disagree. The uv version matches README.md and .ci/run.
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY src ./src
COPY config ./config
RUN pip install uv==0.13.9 \
    && uv sync --locked --no-dev --no-editable \
    && pip uninstall -y uv \
    && setcap cap_net_bind_service=+ep "$(readlink -f /opt/venv/bin/python3)"

# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd (DL3066).
USER 10001:10001
VOLUME ["/data"]
# 6514 is syslog over TLS: published for convenience, but off until syslog.tls is enabled with a
# certificate and key (docs/syslog.md).
EXPOSE 3009 3011 514/udp 514/tcp 6514 162/udp

# `opsresponder healthcheck` reads the same configuration as the service (file and OPSRESPONDER_*
# environment), so it follows a changed events API port or host.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["opsresponder", "--config", "/app/config/opsresponder.yaml", "healthcheck"]

ENTRYPOINT ["opsresponder", "--config", "/app/config/opsresponder.yaml"]
CMD ["serve"]
