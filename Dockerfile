# The Airflow image for this package: Airflow 3.3.2 on Python 3.11 with requirements.txt installed
# (Airflow's docs: extend the image; _PIP_ADDITIONAL_REQUIREMENTS is for quick checks only).
# dags/, plugins/ and include/ are baked in so the same image runs under Airflow's Helm chart;
# docker-compose.yaml mounts the working copy over them for development.
FROM apache/airflow:3.3.2-python3.11

COPY requirements.txt /requirements.txt
# apache-airflow is named again so pip can never up- or downgrade the image's Airflow.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /requirements.txt

COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
