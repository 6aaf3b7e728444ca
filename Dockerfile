# One image for the web service, the publish worker and the migration step.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md alembic.ini gunicorn.conf.py ./
COPY shared ./shared
COPY connect_service ./connect_service
COPY publish_worker ./publish_worker
COPY meta_sandbox ./meta_sandbox
COPY migrations ./migrations
# Editable, so migrations/ and alembic.ini are found beside the packages.
RUN pip install -e . && useradd --system --home /app social && chown -R social /app
USER social

EXPOSE 8000 9100
CMD ["gunicorn", "-c", "gunicorn.conf.py", "connect_service:create_app()"]
