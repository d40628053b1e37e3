"""The base of every cardgen contract: unknown fields are errors, not silently dropped."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")
