"""Prometheus metrics of both processes (DESIGN §4 Operations, issue: observability).

Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set by ``gunicorn.conf.py`` before
any worker imports this, so counters add up across the web processes.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

LATENESS_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 900, 3600)

CONNECTS = Counter("social_connect_connects_total", "OAuth callbacks by result", ["result"])
ERRORS = Counter(
    "social_connect_errors_total", "Errors by error_code (API answers and publish failures)", ["error_code"]
)
POSTS_SCHEDULED = Counter("social_connect_posts_scheduled_total", "Posts stored and queued")
PUBLISHES = Counter("social_connect_publishes_total", "Publish outcomes per target", ["target", "result"])
START_LATENESS = Histogram(
    "social_connect_publish_start_lateness_seconds",
    "First publish run start minus publish_at",
    buckets=LATENESS_BUCKETS,
)
LATENESS = Histogram(
    "social_connect_publish_lateness_seconds",
    "Time the post is live on every target minus publish_at",
    buckets=LATENESS_BUCKETS,
)
GRAPH_CALLS = Histogram(
    "social_connect_graph_call_seconds",
    "Graph API call latency",
    ["endpoint", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20),
)
SWEEPER_REQUEUED = Counter(
    "social_connect_sweeper_requeued_total", "Posts the sweeper put back on the queue", ["reason"]
)
USAGE_SLOWDOWNS = Counter("social_connect_usage_slowdowns_total", "Pauses because Meta usage was above 90%")
JOBS_REFUSED = Counter(
    "social_connect_jobs_refused_total",
    "Jobs on the queue moved to the failed registry unrun (not a contract job function)",
    ["reason"],
)

WEBHOOK_EVENTS = Counter(
    "social_connect_webhook_events_total", "Outcome events committed to the outbox, by type", ["type"]
)
WEBHOOK_DELIVERIES = Counter(
    "social_connect_webhook_deliveries_total",
    "Outcome event delivery attempts by type and result (delivered, retry, dead)",
    ["type", "result"],
)


def observe_graph_call(endpoint: str, seconds: float, outcome: str) -> None:
    GRAPH_CALLS.labels(endpoint=endpoint, outcome=outcome).observe(seconds)


def render() -> tuple[bytes, str]:
    """The exposition text: all processes' files in multiprocess mode, else this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated upstream
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
