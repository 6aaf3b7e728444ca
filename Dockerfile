# The production image, one for the web service, the publish worker and the migration step.
# Dependencies come from requirements.lock (every one pinned, hashes checked); only the three
# production packages are copied, so the Meta sandbox, the demo and fakeredis are not inside
# (they come with a checkout's `make install`, from requirements-dev.lock).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY pyproject.toml README.md alembic.ini gunicorn.conf.py ./
COPY shared ./shared
COPY connect_service ./connect_service
COPY publish_worker ./publish_worker
COPY migrations ./migrations
# Editable, so migrations/ and alembic.ini are found beside the packages; built with the
# locked setuptools, and --no-deps: everything it needs is already installed from the lock.
RUN pip install --no-deps --no-build-isolation -e . && useradd --system --home /app social && chown -R social /app
USER social

EXPOSE 8000 9100
CMD ["gunicorn", "-c", "gunicorn.conf.py", "connect_service:create_app()"]
