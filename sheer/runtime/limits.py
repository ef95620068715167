"""The descriptors a worker may open: nginx's worker_rlimit_nofile, and its warning when
worker_connections asks for more than the limit allows."""

from __future__ import annotations

import resource

from sheer.config.model import Config
from sheer.io.logs import ErrorLogger


def warn_descriptors(config: Config, log: ErrorLogger) -> None:
    """nginx (ngx_event_module_init): `N worker_connections exceed open file resource limit: M`."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = config.worker_rlimit_nofile if config.worker_rlimit_nofile is not None else soft
    if soft != resource.RLIM_INFINITY and config.worker_connections > limit:
        log.log("warn", f"{config.worker_connections} worker_connections exceed open file resource limit: "
                        f"{limit}")


def apply_nofile(config: Config, log: ErrorLogger) -> None:
    """worker_rlimit_nofile N: the worker's soft and hard RLIMIT_NOFILE, set while it still may
    (before it drops to `user`); a failure is nginx's alert, and the worker serves on with the old."""
    wanted = config.worker_rlimit_nofile
    if wanted is None:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
    except (OSError, ValueError) as exc:
        code = getattr(exc, "errno", None) or 1
        reason = getattr(exc, "strerror", None) or "Operation not permitted"
        log.log("alert", f"setrlimit(RLIMIT_NOFILE, {wanted}) failed ({code}: {reason})")
