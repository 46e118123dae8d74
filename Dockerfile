# newsmon's Airflow image: Airflow 3.3 plus the newsmon library, installed with the project's own
# constraints file (the upstream constraints are not reachable everywhere; ours is a pip freeze of a
# working install). docker-compose.yml runs it as api-server, scheduler, dag-processor and triggerer.
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    NEWSMON_HOME=/opt/newsmon

RUN apt-get update \
    && apt-get install -y --no-install-recommends curl tini ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 50000 --gid 0 --home-dir /home/airflow airflow

WORKDIR /opt/newsmon

# Dependencies first (cached while only code changes), then the code.
COPY pyproject.toml constraints.txt README.md ./
COPY pipelines ./pipelines
# psycopg2: Postgres driver for the metadata database (pinned in constraints.txt like the rest)
RUN pip install --constraint constraints.txt ".[airflow]" psycopg2-binary

COPY config ./config
COPY dags ./dags
COPY plugins ./plugins

RUN mkdir -p /opt/airflow/logs /opt/airflow/passwords /opt/newsmon/var \
    && chown -R 50000:0 /opt/airflow /opt/newsmon/var \
    && chmod -R g+rwX /opt/airflow /opt/newsmon/var

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/newsmon/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/newsmon/plugins \
    NEWSMON_CONFIG=/opt/newsmon/config \
    PYTHONPATH=/opt/newsmon

USER 50000
ENTRYPOINT ["tini", "--", "airflow"]
CMD ["version"]
