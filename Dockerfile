# FastTask image: one image for every role; NODE_TYPE picks API, worker or both.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

RUN groupadd --system --gid 10001 fasttask \
    && useradd --system --uid 10001 --gid fasttask --home-dir /app --no-create-home fasttask

# Dependencies first, so that changing a task module does not reinstall them.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY setting.py ./
COPY scripts/python-env.sh scripts/
COPY fasttask/ fasttask/
RUN mkdir -p files && chown 10001:10001 files

USER 10001:10001

# Uploads, task outputs, the users file and internal state; share it between the API and workers.
VOLUME ["/app/files"]
EXPOSE 8005

# API nodes answer GET /health; worker nodes answer a Celery ping through the broker.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-m", "fasttask", "healthcheck"]

CMD ["./fasttask/run.sh"]
