"""Prometheus metrics of one daemon instance (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Counters and gauges served by ``GET /metrics``.

    Example: ``metrics.approvals.inc()`` after a ticket is approved.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pending = Gauge(
            "orchestrator_pending_tickets", "Tickets waiting for approval", registry=self.registry
        )
        self.active = Gauge(
            "orchestrator_active_tickets",
            "Tickets queued, running, overdue, failed or interrupted",
            registry=self.registry,
        )
        self.completed = Gauge(
            "orchestrator_completed_tickets", "Completed tickets on record", registry=self.registry
        )
        self.approvals = Counter(
            "orchestrator_approvals", "Tickets approved", registry=self.registry
        )
        self.completions = Counter(
            "orchestrator_completions", "Completion files accepted", registry=self.registry
        )
        self.rejected_completions = Counter(
            "orchestrator_rejected_completion_files",
            "Completion files set aside",
            ["reason"],
            registry=self.registry,
        )
        self.tracker_failures = Counter(
            "orchestrator_tracker_update_failures",
            "Failed attempts to update the upstream tracker",
            registry=self.registry,
        )
        self.plane_requests = Counter(
            "orchestrator_plane_requests",
            "Requests sent to the Plane API, by HTTP status (or 'error')",
            ["status"],
            registry=self.registry,
        )
        self.session_duration = Histogram(
            "orchestrator_session_duration_seconds",
            "Time from session start to completion",
            buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400),
            registry=self.registry,
        )
