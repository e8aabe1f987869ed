# syntax=docker/dockerfile:1
# The Ray image of the RayService (head and GPU workers): Ray's ray-llm image (Ray Serve
# LLM with the CUDA build of vLLM) plus the gemma-serving package, whose
# serving.app:build_app is the import_path of the generated serveConfigV2. With the Batch
# API on, the chart also runs the gateway from this image (uvicorn, with the log
# configuration written below): a Ray Client needs the cluster's Ray and Python versions,
# and the jobs' code (batch, Ray Data LLM) must import on both sides. Build from the
# repository root:
#   docker build -f docker/ray-worker.Dockerfile -t REGISTRY/gemma-serving/ray-worker:TAG .
# Keep the base image on the Ray version of the chart (serving.rayVersion) and of
# pyproject's `gpu` extra.

FROM rayproject/ray-llm:2.60.0-py311-cu128
# checkov:skip=CKV_DOCKER_2: Kubernetes ignores HEALTHCHECK; KubeRay probes the Ray processes (GCS, raylet, Serve proxy) of head and worker pods

LABEL org.opencontainers.image.title="gemma-serving ray worker" \
      org.opencontainers.image.description="Ray Serve LLM (vLLM) with the gemma-serving variant catalog" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/home/ray/.cache/huggingface \
    HF_HUB_ENABLE_HF_TRANSFER=1

WORKDIR /home/ray/gemma-serving
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 gateway ./gateway
COPY --chown=1000:100 serving ./serving
COPY --chown=1000:100 gemma_serving ./gemma_serving
COPY --chown=1000:100 batch ./batch

# Every package the base image ships is pinned as a constraint, so installing the
# project (and its `gpu` extra) can add packages but never moves Ray, vLLM or torch.
RUN pip freeze --exclude-editable > /tmp/base-image.txt \
 && pip install --constraint /tmp/base-image.txt ".[gpu]" \
 && rm /tmp/base-image.txt \
 && python -c "import ray, vllm, serving.app, serving.catalog; print('ray', ray.__version__, 'vllm', vllm.__version__)" \
 && python -I -c "import gateway.app, gateway.batches.engine, batch.ray_engine, ray.data.llm" \
 && python -c "from gateway.telemetry.logs import write_log_config; write_log_config('/home/ray/gateway-logging.json')" \
 && mkdir -p "$HF_HOME"

# The ray-llm image's own user (uid 1000); the chart runs the pods non-root as this uid.
USER 1000
WORKDIR /home/ray
