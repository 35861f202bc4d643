# One image for every routeq service: route/judge/tier workers, Flower, the metrics exporter,
# the migration job and the simulated model server. Build: docker build -t routeq:latest .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ROUTEQ_CONFIG=/etc/routeq/routeq.toml

WORKDIR /app
# Dependencies first (against a placeholder package), so a code change does not reinstall them.
# Without the [embedded] extra: a deployment always configures its database and broker.
COPY pyproject.toml README.md ./
RUN mkdir -p src/routeq && touch src/routeq/__init__.py && pip install -e . \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin routeq
# Editable install: the Alembic migrations are read from /app/migrations next to the source.
COPY src ./src
COPY migrations ./migrations
COPY ops/compose/routeq.toml /etc/routeq/routeq.toml

USER 10001
ENTRYPOINT ["routeq"]
CMD ["--help"]
