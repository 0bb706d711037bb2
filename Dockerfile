# Lore's image: every production process (api, worker, watcher, beat, migrate) runs from it with a
# different `lore` subcommand (see docker-compose.yml). The model runs elsewhere (vLLM).
#
#   docker build -t lore .
#   docker build --build-arg LLAMA_CPP=0 -t lore .   # skip compiling llama.cpp (no embedded model)
#
# Two stages: wheels are built with compilers in the first, the second installs them on a slim base,
# runs as an unprivileged user and carries no compiler.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# 1 = build llama-cpp-python (the embedded model server, needs a C/C++ toolchain; ~5 min).
# 0 = leave it out: production uses vLLM, and nothing imports llama_cpp unless `lore up` starts it.
ARG LLAMA_CPP=1
# CPU wheels of torch (sentence-transformers runs on the CPU here); never CUDA builds.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake git \
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
 && if [ "${LLAMA_CPP}" = "1" ]; then \
        CMAKE_ARGS="-DGGML_NATIVE=OFF" pip wheel --wheel-dir /wheels \
            --extra-index-url "${TORCH_INDEX}" -c /tmp/constraints.txt . ; \
    else \
        python -c 'import tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; print("\n".join(d for d in deps if not d.startswith("llama-cpp-python")))' > /tmp/deps.txt \
        && pip wheel --wheel-dir /wheels --extra-index-url "${TORCH_INDEX}" -c /tmp/constraints.txt -r /tmp/deps.txt \
        && pip wheel --wheel-dir /wheels --no-deps . ; \
    fi

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
# The wheel folder is the complete, already resolved set (with or without llama-cpp-python).
RUN pip install --no-index --no-deps /wheels/*.whl && rm -rf /wheels
USER lore
WORKDIR /home/lore
VOLUME ["/data", "/ingest"]
EXPOSE 8000
ENTRYPOINT ["tini", "--", "lore"]
CMD ["serve", "--host", "0.0.0.0"]
