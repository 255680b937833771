# syntax=docker/dockerfile:1
# selfheal's container image (docs/deploy.md). Two stages: the first builds selfheal and its
# dependencies into wheels with pip, pinned by constraints.txt; the second, on the slim Python
# image, installs only those wheels (no compiler, no pip, no source tree, no cache) and runs
# as a fixed non-root user whose ids the manifests in deploy/ name (runAsUser 10001).
# No container engine runs in CI: tests/deploy/test_dockerfile.py checks this file's
# essentials statically, and the image is built where it is published.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
# The same pins as CI's install (`make install`): the image runs what the tests ran.
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt .

FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 selfheal \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin selfheal
COPY --from=build /wheels /wheels
# Installed from the built wheels only (--no-index); then pip itself goes: nothing in the
# running image can fetch or build packages.
RUN python -m pip install --no-cache-dir --no-index --find-links /wheels selfheal \
    && rm -rf /wheels \
    && python -m pip uninstall --yes pip setuptools wheel \
    && mkdir -p /etc/selfheal /var/lib/selfheal \
    && chown 10001:10001 /var/lib/selfheal
# Config (/etc/selfheal, read-only ConfigMaps) and state (/var/lib/selfheal, a volume) are
# where deploy/base mounts them.
WORKDIR /var/lib/selfheal
USER 10001:10001
EXPOSE 9095
ENTRYPOINT ["selfheal"]
CMD ["run", "--config", "/etc/selfheal/selfheal.yaml"]
