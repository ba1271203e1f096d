"""Loading the YAML data files beside the stages (``streams/data/*.yaml``)."""

from __future__ import annotations

from typing import Any

import yaml

#: libyaml's parser when PyYAML was built with it: the same safe loading (same constructor and
#: resolver, the same objects), about seven times faster than the pure-Python parser.
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(stream: Any) -> Any:
    """``yaml.safe_load`` of a string or an open file."""
    return yaml.load(stream, Loader=SAFE_LOADER)
