"""Logging helpers that the settings' LOGGING names."""

import json
import logging
import time

from daphne.access import AccessLogGenerator


class WithoutTraceback(logging.Filter):
    """One line, no traceback: for refusals any client can cause (a bad Host header), which
    would otherwise let anyone fill the log with stack traces."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line (LOG_FORMAT=json), for log shippers: the message, and a record's
    `fields` (a run's id, language, status...) as keys of their own."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)

    converter = time.gmtime


class AccessLog(AccessLogGenerator):
    """daphne's access log, without query strings: GET /api/run/<language>?code= carries code."""

    def __call__(self, protocol, action, details):
        if "path" in details:
            details = {**details, "path": details["path"].split("?", 1)[0]}
        super().__call__(protocol, action, details)


class JsonAccessLog(AccessLog):
    """The access log, one JSON object a line."""

    def write_entry(self, host, date, request, status=None, length=None, ident=None, user=None):
        entry = {"time": date.strftime("%Y-%m-%dT%H:%M:%S"), "logger": "access", "client": host,
                 "request": request, "status": status, "bytes": length}  # fmt: skip
        self.stream.write(json.dumps(entry) + "\n")
