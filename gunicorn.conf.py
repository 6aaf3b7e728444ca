"""gunicorn settings for the connect service (``gunicorn -c gunicorn.conf.py 'connect_service:create_app()'``)."""

import os
import shutil
import tempfile

bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# The OAuth callback bounds its Meta calls to 25 s in total; leave room above that.
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
accesslog = "-"
# Path only (%(U)s), never the query string: the OAuth callback's query carries the code.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss request_id=%({x-request-id}o)s'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Prometheus multiprocess mode: every worker writes its samples here, /metrics adds them up.
# Set before any worker imports prometheus_client (workers inherit the environment).
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), "social-connect-metrics"))


def on_starting(server):
    """Samples of a previous run's processes must not be added to this run's."""
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
