# Lore's image: every production process (api, worker, watcher, beat, migrate) runs from it with a
# different `lore` subcommand (see docker-compose.yml). The model runs elsewhere (vLLM).
#
#   docker build -t lore .
#
# The embedded model server (the `lore[local]` extra, llama.cpp) is left out: nothing imports it unless
# `lore up` starts a local model, and production points LORE_LLM__BASE_URL at vLLM.
#
# Two stages: wheels are built with compilers in the first, the second installs them on a slim base,
# runs as an unprivileged user and carries no compiler.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# CPU wheels of torch (sentence-transformers runs on the CPU here); never CUDA builds.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential git \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lore ./lore
COPY api ./api
COPY workers ./workers
COPY ingest ./ingest
COPY synth ./synth
COPY wiki ./wiki
COPY store ./store
COPY bench ./bench
COPY migrations ./migrations
# The CPU build of torch is pinned by a constraint, so no dependency can pull a CUDA build.
RUN echo "torch==2.13.0+cpu" > /tmp/constraints.txt \
 && pip wheel --wheel-dir /wheels --extra-index-url "${TORCH_INDEX}" -c /tmp/constraints.txt .

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    LORE_PATHS__DATA_DIR=/data \
    LORE_PATHS__INGEST_DIR=/ingest
# git: the page store is a git repository; tini: a real PID 1 that forwards signals and reaps children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git tini libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 lore \
 && mkdir -p /data /ingest \
 && chown lore:lore /data /ingest
COPY --from=build /wheels /wheels
# The wheel folder is the complete, already resolved set (without the lore[local] extra).
RUN pip install --no-index --no-deps /wheels/*.whl && rm -rf /wheels
USER lore
WORKDIR /home/lore
VOLUME ["/data", "/ingest"]
EXPOSE 8000
ENTRYPOINT ["tini", "--", "lore"]
CMD ["serve", "--host", "0.0.0.0"]
