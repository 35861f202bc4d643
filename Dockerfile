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
# PIP_CONSTRAINT pins every install below to constraints.txt, the build backend included.
COPY pyproject.toml setup.py MANIFEST.in README.md constraints.txt ./
ENV PIP_CONSTRAINT=/app/constraints.txt
RUN mkdir -p src/routeq migrations && touch src/routeq/__init__.py && pip install . \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin routeq
# routeq itself, installed (not editable) from the wheel pip builds: the Alembic migrations
# travel inside the package (routeq/_migrations), so `routeq db upgrade` needs no source tree.
COPY src ./src
COPY migrations ./migrations
RUN pip install --no-deps --force-reinstall . && rm -rf build src/routeq.egg-info
COPY ops/compose/routeq.toml /etc/routeq/routeq.toml

USER 10001
ENTRYPOINT ["routeq"]
CMD ["--help"]
