"""Shared fixtures: tiny real checkpoints built on the fly, once per session."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Nothing in the tests may reach the real Hub: the Hub tests use a fake on 127.0.0.1 and pass its
# URL explicitly. Telemetry and download counters off; the cache goes to a throwaway directory.
# huggingface_hub reads these once, at import: set them before anything imports it.
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"
_HF_HOME = tempfile.mkdtemp(prefix="cardgen-tests-hf-")  # removed when the run ends
os.environ["HF_HOME"] = _HF_HOME
os.environ.pop("HF_HUB_CACHE", None)
os.environ.pop("HF_TOKEN", None)
os.environ.pop("HF_ENDPOINT", None)

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config: pytest.Config) -> None:
    """The demo family is cached in pytest's cache (keyed by recipe digest), not the user's."""
    cache = getattr(config, "cache", None)  # absent with -p no:cacheprovider
    os.environ["CARDGEN_CACHE"] = (
        str(cache.mkdir("cardgen")) if cache else tempfile.mkdtemp(prefix="cardgen-tests-cache-")
    )


# The real demo family takes minutes to train. When the selected tests need it and it is not
# cached yet, `cardgen demo build` starts in the background as soon as collection is done, so
# that the other tests run while it trains (its small matrices do not keep both cores busy):
# the tests that need the family run last, and the `demo_family` fixture waits for the build.
# The build is the command users run, into the same cache.
_FAMILY_BUILD: dict[str, object] = {}


def _needs_family(item: pytest.Item) -> bool:
    return "demo_family" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(session: pytest.Session, items: list[pytest.Item]) -> None:
    """The tests that need the real family run last, so that the rest run during its build."""
    items.sort(key=_needs_family)  # stable: each group keeps its order


def pytest_collection_finish(session: pytest.Session) -> None:
    if not any(_needs_family(item) for item in session.items):
        return
    from cardgen.demo import family as fam

    if fam.is_built(fam.cached_family()):
        return
    log = Path(tempfile.mkdtemp(prefix="cardgen-family-build-")) / "build.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cardgen", "demo", "build"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    _FAMILY_BUILD.update(proc=proc, log=log)


def wait_for_family_build() -> None:
    """Wait for the background build, if one was started; fail with its log if it failed."""
    proc = _FAMILY_BUILD.pop("proc", None)
    if not isinstance(proc, subprocess.Popen):
        return
    code = proc.wait()
    if code != 0:
        log = _FAMILY_BUILD["log"]
        assert isinstance(log, Path)
        pytest.fail(f"`cardgen demo build` failed ({code}):\n{log.read_text()[-3000:]}")


def pytest_unconfigure(config: pytest.Config) -> None:
    """A run stopped early (-x, Ctrl-C) leaves no build running behind it, and no run leaves
    its throwaway Hub cache behind."""
    proc = _FAMILY_BUILD.pop("proc", None)
    if isinstance(proc, subprocess.Popen) and proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # the build removes its temporary directory
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    shutil.rmtree(_HF_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny Llama checkpoint in 3 safetensors shards (+ index), built once per session."""
    from cardgen.demo.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(
        tmp_path_factory.mktemp("tiny") / "sharded", seed=1, max_shard_size="1MB"
    )


@pytest.fixture()
def checkpoint(tiny_sharded: Path, tmp_path: Path) -> Path:
    """A fresh copy of the tiny checkpoint with the awkward parts of real Hub repos added:
    nested folders, a name that sorts differently as a path than as a string, git files."""
    d = tmp_path / "ckpt"
    shutil.copytree(tiny_sharded, d)
    (d / "original").mkdir()
    (d / "original" / "params.json").write_text('{"dim": 128}\n')
    (d / "original.md").write_text("notes\n")
    (d / "nested" / "deeper").mkdir(parents=True)
    (d / "nested" / "deeper" / "extra.txt").write_text("x" * 5000)
    (d / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    (d / ".git").mkdir()
    (d / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return d
