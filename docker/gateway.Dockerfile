# syntax=docker/dockerfile:1
# The gateway image: the gemma-serving package (base install: no Ray, no vLLM, no torch)
# served by uvicorn. Build from the repository root:
#   docker build -f docker/gateway.Dockerfile -t REGISTRY/gemma-serving/gateway:TAG .

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY serving ./serving
COPY gemma_serving ./gemma_serving
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/python -c "import gateway, serving.catalog, gemma_serving.cli" \
 && /opt/venv/bin/python -c "from gateway.telemetry.logs import write_log_config; write_log_config('/opt/venv/gateway-logging.json')"

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="gemma-serving gateway" \
      org.opencontainers.image.description="OpenAI-compatible gateway for Gemma on Ray Serve LLM" \
      org.opencontainers.image.licenses="Apache-2.0"
# An unprivileged user with a fixed high uid (the chart runs the pod as 10001).
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UVICORN_HOST=0.0.0.0 \
    UVICORN_PORT=8080 \
    UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN=600
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('UVICORN_PORT', '8080')}/healthz\", timeout=2)"]
# uvicorn reads UVICORN_* variables; on SIGTERM it stops accepting connections and waits
# up to UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN seconds for open streams to finish. Logs are JSON
# lines with the request's trace id (gateway.telemetry.logs); UVICORN_LOG_LEVEL still applies.
# Connections get the gateway's HTTP protocol: header, idle and unread-body deadlines,
# header size and connection limit from GATEWAY_SERVER__* (gateway.server).
ENTRYPOINT ["uvicorn", "--factory", "gateway.app:create_app", "--http", "gateway.server.protocol:GatewayHttpProtocol", "--proxy-headers", "--no-server-header", "--log-config", "/opt/venv/gateway-logging.json"]
