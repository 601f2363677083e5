"""The frozen values passed from the compile stage to the execution stage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devices import Shot

__all__ = ["CompiledShot"]


class CompiledShot:
    """A shot and the instructions compiled for each of its devices.

    A plain slotted class (not a dataclass) on purpose: Prefect walks task
    parameters looking for futures, and this keeps it from descending into large
    instruction arrays.
    """

    __slots__ = ("instructions", "shot")

    def __init__(self, shot: Shot, instructions: Mapping[str, Mapping[str, Any]]) -> None:
        self.shot = shot
        self.instructions = instructions

    @property
    def index(self) -> int:
        """The shot's index in the sequence."""
        return self.shot.index

    def __repr__(self) -> str:
        return f"CompiledShot(index={self.index}, devices={sorted(self.instructions)})"
