"""Native model classes built by the harness itself, so no code from a model directory has to run."""

from .qzhou import QZhouModel, is_qzhou_config

__all__ = ["QZhouModel", "is_qzhou_config"]
