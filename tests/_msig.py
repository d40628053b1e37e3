"""The reference: OpenSSF model_signing's own digest of a model, computed by the library.

It goes through model_signing's signing payload, so the digest compared is exactly the in-toto
subject its signatures carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def model_signing_digest(
    path: Path, *, allow_symlinks: bool = False, ignore: Iterable[str] = ()
) -> str:
    from model_signing import hashing
    from model_signing._signing.signing import Payload

    cfg = hashing.Config().set_ignored_paths(paths=list(ignore), ignore_git_paths=True)
    cfg.set_allow_symlinks(allow_symlinks)
    statement = Payload(cfg.hash(path)).statement.pb
    return str(statement.subject[0].digest["sha256"])


def model_signing_files(path: Path, *, allow_symlinks: bool = False) -> list[str]:
    """The resource names in the order model_signing signs them."""
    from model_signing import hashing

    cfg = hashing.Config().set_allow_symlinks(allow_symlinks)
    return [d.identifier for d in cfg.hash(path).resource_descriptors()]
