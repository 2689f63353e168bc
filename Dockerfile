# OpsResponder: one container, both APIs, syslog and SNMP listeners.
# There is no Docker engine on the development machines; keep this file simple and obviously correct.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    OPSRESPONDER_DATA_DIR=/data

# libcap2-bin: setcap, so the unprivileged user can bind 514 and 162 (CAP_NET_BIND_SERVICE on the
# interpreter only; Docker's default capability set allows it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcap2-bin \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin opsresponder \
    && mkdir -p /data && chown opsresponder:opsresponder /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY config ./config
RUN pip install . \
    && setcap cap_net_bind_service=+ep "$(readlink -f "$(command -v python3)")"

USER opsresponder
VOLUME ["/data"]
EXPOSE 3009 3011 514/udp 514/tcp 6514 162/udp

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:3009/health', timeout=4).status != 200)"]

ENTRYPOINT ["opsresponder", "--config", "/app/config/opsresponder.yaml"]
CMD ["serve"]
