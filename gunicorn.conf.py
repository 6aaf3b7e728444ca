"""gunicorn settings for the connect service (``gunicorn -c gunicorn.conf.py 'connect_service:create_app()'``)."""

import os
import shutil
import tempfile

from gunicorn.glogging import Logger

bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# The OAuth callback bounds its Meta calls to 25 s in total; leave room above that.
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
accesslog = "-"
# Path only (%(U)s), never the query string: the OAuth callback's query carries the code.
# Only these atoms exist (see AccessLogger below); any other one prints "-".
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss request_id=%({x-request-id}o)s'
# gunicorn 27 opens a control socket at one path per user ($HOME/.gunicorn/gunicorn.ctl),
# which every gunicorn on the host would share; nothing here uses it.
control_socket_disable = True
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


class AccessLogger(Logger):
    """gunicorn's logger, building only the atoms ``access_log_format`` uses.

    The stock ``atoms`` copies every request header, response header and environ variable
    into a dict and formats the date for each request; an access line needs seven values.
    The line still goes through logging (and the app's masking of anything token-shaped).
    """

    def atoms(self, resp, req, environ, request_time):
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        request_id = next((value for name, value in resp.headers if name.lower() == "x-request-id"), "-")
        return {
            "h": environ.get("REMOTE_ADDR", "-"),
            "m": environ.get("REQUEST_METHOD"),
            "U": environ.get("PATH_INFO"),
            "s": status,
            "b": str(sent) if sent is not None else "-",
            "L": f"{request_time.seconds}.{request_time.microseconds:06d}",
            "{x-request-id}o": request_id,
        }


logger_class = AccessLogger
