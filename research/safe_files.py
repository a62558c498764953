"""What every research command's output files share: strict JSON values and whole-file writes.

``json.dumps(..., allow_nan=False)`` refuses NaN and infinity, and plain ``json`` cannot write numpy
scalars; :func:`json_safe` turns a document into what it can write (undefined numbers as
``null``). :func:`write_whole` writes a file under a temporary name and renames it, so a reader
(a browser, another command, the readiness checklist) never sees half a file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["json_safe", "write_whole"]


def json_safe(value: Any) -> Any:
    """Return ``value`` with NaN and infinite floats as ``None`` and numpy scalars as Python ones.

    Mappings become dicts (keys kept) and lists or tuples become lists, recursively; anything
    else (str, None, a timestamp) is returned as it is.

    Examples
    --------
    >>> json_safe({"a": float("nan"), "b": (np.float64(1.5), np.int64(2), np.bool_(True)), "c": "x"})
    {'a': None, 'b': [1.5, 2, True], 'c': 'x'}
    """
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_whole(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through ``.<name>.tmp`` beside it and return the path.

    The parent folder must exist. The rename replaces an older file in one step.

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target
