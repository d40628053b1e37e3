"""Checkpoint hashing: cardgen vs OpenSSF model_signing, and vs this machine's limit.

Builds a synthetic 4-shard safetensors checkpoint (2 GiB by default), warms the page cache, then
in one run measures, alternating the two tools and taking each one's best of N:

- cardgen's fingerprint hashing (`collect_files` + `hash_files` + `checkpoint_digest`) wall time;
- model_signing's own hashing of the same directory (`model_signing.hashing.hash`) wall time;
- the machine's limit: cores x single-core hashlib sha256 throughput, measured here on bytes in
  memory (no file I/O), so no file-hashing program can beat it.

Prints the ratio cardgen / model_signing (goal from issue 2: <= 0.7) and cardgen's throughput as
a fraction of the limit, and checks that both tools produce the identical digest.

    python benchmarks/bench_fingerprint.py [--gib 2] [--repeats 3] [--dir /tmp/cardgen-bench]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
import time
from pathlib import Path


def build_checkpoint(root: Path, total_bytes: int, shards: int = 4) -> None:
    """Valid safetensors shards of random F32 data (incompressible, like real weights)."""
    root.mkdir(parents=True, exist_ok=True)
    per = total_bytes // shards
    chunk = 64 << 20
    for i in range(shards):
        path = root / f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        n_floats = (per - 4096) // 4
        header = json.dumps(
            {"w": {"dtype": "F32", "shape": [n_floats], "data_offsets": [0, n_floats * 4]}}
        ).encode()
        if path.exists() and path.stat().st_size == 8 + len(header) + n_floats * 4:
            continue
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header)
            left = n_floats * 4
            while left:
                n = min(chunk, left)
                f.write(os.urandom(n))
                left -= n
    (root / "config.json").write_text('{"model_type": "llama", "architectures": ["X"]}\n')


def warm(root: Path) -> None:
    for p in sorted(root.iterdir()):
        with open(p, "rb") as f:
            while f.read(16 << 20):
                pass


def cardgen_digest(root: Path) -> str:
    from cardgen import _hashing

    files = _hashing.collect_files(root)
    return _hashing.checkpoint_digest(_hashing.hash_files(files))


def model_signing_digest(root: Path) -> str:
    from model_signing import hashing
    from model_signing._signing.signing import Payload

    statement = Payload(hashing.hash(root)).statement.pb
    return str(statement.subject[0].digest["sha256"])


def single_core_sha256_bps(seconds: float = 1.0) -> float:
    buf = os.urandom(64 << 20)
    h = hashlib.sha256()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        h.update(buf)
        n += len(buf)
    return n / (time.perf_counter() - t0)


def timed(fn, root: Path) -> tuple[float, str]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    digest = fn(root)
    return time.perf_counter() - t0, digest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/cardgen-bench-ckpt"))
    args = ap.parse_args()

    total = int(args.gib * (1 << 30))
    build_checkpoint(args.dir, total)
    size = sum(p.stat().st_size for p in args.dir.iterdir())
    warm(args.dir)
    # Import both before timing: library import time is not hashing time.
    import model_signing.hashing  # noqa: F401

    import cardgen._hashing  # noqa: F401

    ours, theirs = [], []
    d_ours = d_theirs = ""
    for _ in range(args.repeats):
        t, d_theirs = timed(model_signing_digest, args.dir)
        theirs.append(t)
        t, d_ours = timed(cardgen_digest, args.dir)
        ours.append(t)
    cores = os.cpu_count() or 1
    core_bps = single_core_sha256_bps()
    limit_s = size / (cores * core_bps)
    best_ours, best_theirs = min(ours), min(theirs)

    print(f"checkpoint: 4 shards + config, {size / 2**30:.2f} GiB, page cache warm")
    print(f"model_signing 1.1.1 hashing: {best_theirs:.3f} s (best of {args.repeats}: "
          f"{', '.join(f'{t:.3f}' for t in theirs)})")  # fmt: skip
    print(f"cardgen hashing:             {best_ours:.3f} s (best of {args.repeats}: "
          f"{', '.join(f'{t:.3f}' for t in ours)})")  # fmt: skip
    print(f"machine limit: {cores} cores x {core_bps / 1e9:.2f} GB/s sha256 = {limit_s:.3f} s")
    print(f"identical digest: {d_ours == d_theirs} ({d_ours[:16]}...)")
    print(f"RATIO cardgen/model_signing wall time: {best_ours / best_theirs:.2f}x (goal <= 0.70)")
    print(f"RATIO cardgen throughput / machine limit: {limit_s / best_ours:.2f}")
    return 0 if d_ours == d_theirs else 1


if __name__ == "__main__":
    sys.exit(main())
