# The digest image: one image for the web app, the workers, beat and `digest init`.
# Stage 1 turns uv.lock into wheels (hash-checked) and installs them with the project into
# /opt/venv; stage 2 is the slim runtime: no compilers, no pip, no uv, a non-root user.
FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# The same uv as the Makefile's (UV_VERSION), and the setuptools pyproject.toml pins for the build.
ARG UV_VERSION=0.13.9
ARG SETUPTOOLS_VERSION=80.9.0
RUN pip install "uv==${UV_VERSION}"

WORKDIR /app
COPY pyproject.toml uv.lock ./
# The runtime dependencies exactly as locked (no dev tools), with their hashes, as wheels.
RUN uv export --frozen --no-emit-project --format requirements-txt --output-file /tmp/requirements.txt \
    && pip wheel --require-hashes --no-deps --wheel-dir /wheels --requirement /tmp/requirements.txt \
    && pip wheel --no-deps --wheel-dir /wheels "setuptools==${SETUPTOOLS_VERSION}" \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links /wheels --require-hashes --no-deps \
       --requirement /tmp/requirements.txt

# The project itself, installed in place: it reads templates/ beside the digest package.
COPY README.md ./
COPY digest ./digest
COPY workers ./workers
COPY templates ./templates
RUN /opt/venv/bin/pip install --no-index --find-links /wheels "setuptools==${SETUPTOOLS_VERSION}" \
    && /opt/venv/bin/pip install --no-index --no-deps --no-build-isolation --editable . \
    && /opt/venv/bin/pip uninstall --yes setuptools pip \
    && /opt/venv/bin/digest --help > /dev/null


FROM python:3.11-slim-bookworm AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DIGEST_LOG_FORMAT=json
# A user of its own; the code is root's and read-only to it; /data is its working directory.
RUN groupadd --system --gid 10001 digest \
    && useradd --system --uid 10001 --gid digest --home-dir /data --create-home digest
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /data
USER 10001:10001

EXPOSE 8000
# Alive (not ready): /readyz is for the load balancer, a restart would not fix the database.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["digest", "serve", "--host", "0.0.0.0", "--port", "8000"]
