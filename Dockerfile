# One image, two services: `docker run dagbridge bridge` and `docker run dagbridge worker`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# Dependencies first, from pyproject.toml alone: Airflow and its tree take minutes to install,
# and this layer is then rebuilt only when the dependencies change, not with every code change.
COPY pyproject.toml README.md ./
ARG PACKAGES="schemas infra airflow_adapter workflows activities bridge dagbridge"
RUN for package in $PACKAGES; do mkdir "$package" && touch "$package/__init__.py"; done \
    && pip install . \
    && pip uninstall --yes dagbridge \
    && rm -rf $PACKAGES build ./*.egg-info

COPY schemas/ schemas/
COPY infra/ infra/
COPY airflow_adapter/ airflow_adapter/
COPY workflows/ workflows/
COPY activities/ activities/
COPY bridge/ bridge/
COPY dagbridge/ dagbridge/
RUN pip install --no-deps . && rm -rf build ./*.egg-info

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin dagbridge
WORKDIR /app
# The example DAGs; docker-compose.yml mounts the checkout's dags/ over them.
COPY dags/ dags/
# Task-try logs (DAGBRIDGE_LOGS_BASE); docker-compose.yml mounts a volume the workers share here.
RUN mkdir /app/logs && chown dagbridge /app/logs
USER dagbridge

# Airflow runs as a library here: its home only holds the config it writes on first import,
# and its example plugins would print on every task event.
ENV AIRFLOW_HOME=/home/dagbridge/airflow \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    DAGBRIDGE_DAGS_FOLDER=/app/dags \
    DAGBRIDGE_LOGS_BASE=/app/logs \
    DAGBRIDGE_METRICS_PORT=9464 \
    DAGBRIDGE_LOG_FORMAT=json
EXPOSE 9464

ENTRYPOINT ["dagbridge"]
CMD ["--help"]
