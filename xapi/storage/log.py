"""`xapi.storage.log`: what SMAPIv3 plugins log through (syslog facility local2, as xen-api's module does).

Nothing is ever written to stdout: stdout carries the call's result."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

LOG_LEVEL = logging.DEBUG
LOG_TO_STDERR = False
_LOGGER = logging.getLogger("SMAPIv3")


def configure_logging() -> None:
    _LOGGER.setLevel(LOG_LEVEL)
    formatter = logging.Formatter("SMAPIv3: [%(process)d] - %(levelname)s - %(message)s")
    handlers: list = []
    if os.path.exists("/dev/log"):
        from logging.handlers import SysLogHandler  # only when there is a syslog to talk to: slow to import

        handlers.append(SysLogHandler(address="/dev/log", facility=SysLogHandler.LOG_LOCAL2))
    if LOG_TO_STDERR:
        handlers.append(logging.StreamHandler(sys.stderr))
    if not handlers:
        handlers.append(logging.NullHandler())
    for handler in handlers:
        handler.setLevel(LOG_LEVEL)
        handler.setFormatter(formatter)
        _LOGGER.addHandler(handler)
    _LOGGER.propagate = False


def debug(message: str, *args: Any, **kwargs: Any) -> None:
    _LOGGER.debug(message, *args, **kwargs)


def info(message: str, *args: Any, **kwargs: Any) -> None:
    _LOGGER.info(message, *args, **kwargs)


def warning(message: str, *args: Any, **kwargs: Any) -> None:
    _LOGGER.warning(message, *args, **kwargs)


def error(message: str, *args: Any, **kwargs: Any) -> None:
    _LOGGER.error(message, *args, **kwargs)


def critical(message: str, *args: Any, **kwargs: Any) -> None:
    _LOGGER.critical(message, *args, **kwargs)


def log_call_argv() -> None:
    info("called as: %s", sys.argv)


def handle_unhandled_exceptions(exception_type: Any, exception_value: Any, exception_traceback: Any) -> None:
    if not issubclass(exception_type, KeyboardInterrupt):
        critical("Unhandled exception", exc_info=(exception_type, exception_value, exception_traceback))
    sys.__excepthook__(exception_type, exception_value, exception_traceback)


configure_logging()
sys.excepthook = handle_unhandled_exceptions
