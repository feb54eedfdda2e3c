"""Keep credentials out of everything the harness writes: results, configs, logs and W&B files.

Any environment variable whose name says it holds a credential (WANDB_API_KEY, HF_TOKEN, ...) has its
value replaced by `***` wherever it would appear, even if a user interpolated it into the config.
"""

from __future__ import annotations

import logging
import os
import re

_SECRET_NAME = re.compile(r"TOKEN|API_KEY|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
MASK = "***"


def values() -> list[str]:
    # Short values (e.g. "1", "true") would mask ordinary text; real credentials are long.
    found = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8}
    return sorted(found, key=len, reverse=True)


def scrub(obj):
    """`obj` (str, or nested dict/list of them) with every secret value masked."""
    secrets = values()
    if not secrets:
        return obj

    def clean(x):
        if isinstance(x, str):
            for secret in secrets:
                x = x.replace(secret, MASK)
            return x
        if isinstance(x, dict):
            return {clean(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(clean(v) for v in x)
        return x

    return clean(obj)


class _Filter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def install_log_filter() -> None:
    """Mask secrets in every log line this process writes (handlers of the root logger)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, _Filter) for f in handler.filters):
            handler.addFilter(_Filter())
