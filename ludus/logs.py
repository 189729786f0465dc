"""Logging of the long-running services: text or JSON lines (``LUDUS_LOG_FORMAT``), one level
(``LUDUS_LOG_LEVEL``), and warnings that are worth saying once rather than on every retry."""

from __future__ import annotations

import logging
import sys
import threading

from ludus import constants as c

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# python-json-logger adds every ``extra=`` field of a record as a key of its own (job_id, phase, duration_s...)
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"

_said: set[str] = set()
_said_lock = threading.Lock()


def configure(log_format: str = "text", level: str = "INFO") -> None:
    """Route every logger to stderr in the given format; replaces handlers set up before (idempotent)."""
    if log_format not in c.LOG_FORMATS:
        raise ValueError(f"log format must be one of {c.LOG_FORMATS}, got {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level", "asctime": "time"}))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # pika logs a returned message as a WARNING with its whole Basic.Return and properties, and each failed
    # connection attempt as ERRORs with a traceback; the worker reports both in one line of its own.
    logging.getLogger("pika").setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)


def warn_once(logger: logging.Logger, key: str, message: str, *args: object) -> bool:
    """Log ``message`` at WARNING the first time ``key`` is seen in this process; True when it was logged."""
    with _said_lock:
        if key in _said:
            return False
        _said.add(key)
    logger.warning(message, *args)
    return True


def forget_warnings() -> None:
    """Let every ``warn_once`` speak again (after the condition was resolved, and in tests)."""
    with _said_lock:
        _said.clear()
