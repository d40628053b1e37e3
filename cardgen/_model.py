"""The base of every cardgen contract: unknown fields are errors, not silently dropped."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: A sha256 as lowercase hex. Digests are quoted raw in cards, PDFs and attestations; typing them
#: means evidence from another organisation cannot smuggle markup in through a "digest".
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
