"""Logging helpers that the settings' LOGGING names."""

import logging


class WithoutTraceback(logging.Filter):
    """One line, no traceback: for refusals any client can cause (a bad Host header), which
    would otherwise let anyone fill the log with stack traces."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True
