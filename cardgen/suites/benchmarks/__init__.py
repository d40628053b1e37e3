"""The field's public safety benchmarks as packs, imported from their published files.

    >>> spec = BenchmarkSpec(name="harmbench", source="harmbench_behaviors_text_test.csv")
    >>> packs = load_benchmark(spec)                                    # doctest: +SKIP

cardgen ships importers, never benchmark text: the user names a local file in the published
format, or a Hugging Face dataset file (``hf://datasets/ORG/NAME@REV#path/in/repo.csv``,
downloaded with huggingface_hub and pinned to the commit it resolved to). Each benchmark becomes
one pack per expected behaviour (a benchmark with a harmful and a benign half gives two), run
like the shipped packs: the same lm-eval task, judges, comparison, gate and documents. Probes
keep the benchmark's own categories (as ids, e.g. ``chemical_biological``); the table that maps
them onto the suite's categories is `cardgen.categories.BENCHMARK_CATEGORIES`. The file's
sha256, the benchmark's name, version, licence and citation travel as the pack's provenance:
into the suite digest, the PDF's method section and the card's model-index.

One module per benchmark (`harmbench`, `strongreject`, `xstest`, `donotanswer`, `jbb`,
`advbench`) and the jailbreak-template pack (`jailbreak`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from cardgen._model import Contract
from cardgen.errors import CardgenError

if TYPE_CHECKING:  # cardgen.suites imports this package lazily; no cycle at load time
    from cardgen.suites import Pack

#: Licences (SPDX ids, lower case) and what they forbid. A benchmark under a licence listed here,
#: or under one cardgen does not know, runs only with `accept_license: true`, and the documents
#: name the restriction.
LICENSE_RESTRICTIONS: dict[str, str] = {
    "cc-by-nc-4.0": "non-commercial use only",
    "cc-by-nc-sa-4.0": "non-commercial use only; derivatives under the same licence",
    "cc-by-nc-nd-4.0": "non-commercial use only; no derivatives",
    "other": "custom terms: read them before use",
    "unknown": "no licence recorded: its terms are unknown",
}
#: Licences without a use restriction that matters for evaluation (attribution still applies).
OPEN_LICENSES = frozenset(
    {"mit", "apache-2.0", "cc-by-4.0", "cc-by-sa-4.0", "cc0-1.0", "bsd-3-clause"}
)


class BenchmarkSpec(Contract):
    """One benchmark as configured (`eval.benchmarks` entries, `cardgen eval --benchmark`)."""

    name: str = Field(
        description="harmbench, strongreject, xstest, donotanswer, jbb, advbench or jailbreak."
    )
    source: str = Field(
        description="A local file (or directory) in the published format, or "
        "hf://datasets/ORG/NAME@REV#path/in/repo."
    )
    split: str | None = Field(
        default=None,
        description="Benchmark-specific: harmbench test|val "
        "(which published file a directory holds), jbb harmful|benign.",
    )
    version: str | None = Field(default=None, description="Overrides the benchmark's version.")
    license: str | None = Field(default=None, description="Overrides the licence (SPDX id).")
    accept_license: bool = Field(
        default=False,
        description="Run a benchmark whose licence restricts use (non-commercial, unknown terms).",
    )
    # The jailbreak pack
    pack: str | None = Field(
        default=None,
        description="jailbreak: the pack whose requests to "
        "refuse are wrapped (a shipped pack or a configured benchmark).",
    )
    placeholder: str = Field(
        default="[INSERT PROMPT HERE]",
        description="jailbreak: where the request goes in a template.",
    )
    missing_placeholder: Literal["skip", "append"] = Field(
        default="skip",
        description="jailbreak: templates without the placeholder are skipped, "
        "or get the request appended after a blank line.",
    )
    requests_per_template: int = Field(default=1, ge=1, le=100)
    max_templates: int | None = Field(default=None, ge=1)
    seed: int = 0


class Provenance(Contract):
    """Where a benchmark pack came from, as every document states it."""

    benchmark: str
    title: str
    version: str
    dataset_id: str = Field(description="The benchmark's dataset id on the Hugging Face Hub.")
    revision: str = Field(description="The dataset commit, or sha256:<file> for a local file.")
    files: dict[str, str] = Field(description="File name -> sha256 of the bytes imported.")
    source: str = Field(description="What the user named (a path or an hf:// reference).")
    license: str
    license_restriction: str | None = None
    citation: str
    url: str
    records: int
    note: str | None = None


@dataclass(frozen=True)
class Item:
    """One probe as an importer reads it from the published file."""

    id: str
    category: str  # the benchmark's own category, as an id
    expected: Literal["refuse", "comply"]
    prompt: str
    framing: str = "direct"


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    version: str
    dataset_id: str
    license: str
    citation: str
    url: str
    formats: str  # what the published file looks like, for help and errors
    read: Callable[[list[Path], BenchmarkSpec], list[Item]]
    #: Pack names per expected behaviour (a benchmark with one half uses its name).
    halves: dict[str, str] = field(default_factory=dict)
    #: Files to take from a dataset repo when the reference names none.
    default_files: tuple[str, ...] = ()
    expected_counts: str = ""


def slug(text: str) -> str:
    """A benchmark's category name as an id (``Malware/Hacking`` -> ``malware_hacking``)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "uncategorised"


def probe_id(bench: str, raw: str) -> str:
    return f"{bench}-{re.sub(r'[^A-Za-z0-9_.:-]+', '-', raw).strip('-')[:100] or 'x'}"


def _registry() -> dict[str, Benchmark]:
    from cardgen.suites.benchmarks import (
        advbench,
        donotanswer,
        harmbench,
        jbb,
        strongreject,
        xstest,
    )

    return {
        b.name: b
        for b in (
            harmbench.BENCHMARK,
            strongreject.BENCHMARK,
            xstest.BENCHMARK,
            donotanswer.BENCHMARK,
            jbb.BENCHMARK,
            advbench.BENCHMARK,
        )
    }


def benchmarks() -> dict[str, Benchmark]:
    """Every importable benchmark by name (the jailbreak pack is separate: it wraps a pack)."""
    return _registry()


def get(name: str) -> Benchmark:
    known = _registry()
    if name not in known:
        raise CardgenError(
            f"unknown benchmark {name!r}.", hint=f"Known: {', '.join([*known, 'jailbreak'])}."
        )
    return known[name]


def license_restriction(license_id: str) -> str | None:
    lid = license_id.lower()
    if lid in OPEN_LICENSES:
        return None
    return LICENSE_RESTRICTIONS.get(lid, LICENSE_RESTRICTIONS["other"])


@dataclass
class Fetched:
    """A benchmark's files on this machine and where they came from."""

    files: list[Path]
    source: str
    dataset_id: str | None
    revision: str | None  # a commit for a dataset repo


def fetch(spec: BenchmarkSpec, default_files: Sequence[str] = ()) -> Fetched:
    """The local files of ``spec.source``: a file, a directory's data files, or a file from a
    Hub dataset repo downloaded at a pinned commit."""
    src = spec.source
    if src.startswith("hf://"):
        return _fetch_hub(spec, default_files)
    path = Path(src).expanduser()
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and p.suffix.lower() in (".csv", ".tsv", ".jsonl", ".json", ".parquet")
        )
        if not files:
            raise CardgenError(
                f"benchmark {spec.name}: {path} holds no .csv, .jsonl, .json or .parquet file."
            )
        return Fetched(files, src, None, None)
    if not path.is_file():
        raise CardgenError(
            f"benchmark {spec.name}: {path} not found.",
            hint="Give a local file in the published format, or "
            "hf://datasets/ORG/NAME@REV#path/in/repo.",
        )
    return Fetched([path], src, None, None)


_HF_DATASET = re.compile(
    r"^hf://datasets/([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@([^#]+))?"
    r"(?:#(.+))?$"
)


def _fetch_hub(spec: BenchmarkSpec, default_files: Sequence[str]) -> Fetched:
    m = _HF_DATASET.match(spec.source)
    if not m or ".." in spec.source:
        raise CardgenError(
            f"benchmark {spec.name}: {spec.source}: not a dataset reference.",
            hint="Write hf://datasets/ORG/NAME@REVISION#path/in/repo.csv.",
        )
    repo_id, revision, inner = m.group(1), m.group(2), m.group(3)
    wanted = [inner] if inner else list(default_files)
    if not wanted:
        raise CardgenError(
            f"benchmark {spec.name}: {spec.source} names no file.",
            hint=f"Add the file's path in the repo after '#': {spec.source}#path/to/file.csv",
        )
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    files, commit = [], None
    for name in wanted:
        try:
            local = Path(
                hf_hub_download(
                    repo_id,
                    name,
                    repo_type="dataset",
                    revision=commit or revision,
                    endpoint=os.environ.get("HF_ENDPOINT") or None,
                )
            )
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
            from cardgen.redact import redact

            raise CardgenError(
                f"benchmark {spec.name}: cannot download {name} from dataset {repo_id}"
                f"{'@' + revision if revision else ''}: {redact(str(e).splitlines()[0])[:200]}",
                hint="Check the repo, revision and path (and HF_TOKEN for a gated dataset).",
            ) from None
        # The cache keeps each file under snapshots/<commit>/: that is the pinned revision.
        parts = local.parts
        if "snapshots" in parts:
            commit = parts[parts.index("snapshots") + 1]
        files.append(local)
    return Fetched(files, spec.source, repo_id, commit or revision)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_benchmark(spec: BenchmarkSpec, loaded: Sequence[Pack] = ()) -> list[Pack]:
    """The packs of one configured benchmark (``loaded``: packs already in the suite, which the
    jailbreak pack takes its requests from). Raises CardgenError for an unknown benchmark, a
    restricted licence not accepted, or a file that does not match the published format (naming
    its line and column)."""
    from cardgen.suites import (
        CUSTOM_PACK_TEMPLATE,
        SUITE_DIR,
        Pack,
        PackSpec,
        Probe,
        read_task_yaml,
    )

    if spec.name == "jailbreak":
        bench = Benchmark(
            name="jailbreak",
            title="Jailbreak templates",
            version="unversioned",
            dataset_id="local",
            license="unknown",
            citation="the template collection's own citation",
            url="",
            formats="JSON list of templates",
            read=lambda files, s: [],
        )
    else:
        bench = get(spec.name)
    license_id = (spec.license or bench.license).lower()
    restriction = license_restriction(license_id)
    if restriction and not spec.accept_license:
        raise CardgenError(
            f"benchmark {spec.name}: licence {license_id} ({restriction}).",
            hint="Check that your use is allowed, then set accept_license: true (or give the "
            "licence with `license:`); the documents will name the restriction.",
        )
    fetched = fetch(spec, bench.default_files)
    note = None
    if spec.name == "jailbreak":
        from cardgen.suites.benchmarks import jailbreak

        source = next((p for p in loaded if p.name == spec.pack), None)
        if source is None:
            raise CardgenError(
                f"jailbreak: `pack: {spec.pack}` is not in the suite.",
                hint="Name a shipped pack (harmful) or a benchmark configured before it.",
            )
        requests = [
            Item(p.id, p.category, "refuse", p.prompt)
            for p in source.probes
            if p.expected == "refuse" and p.prompt is not None
        ]
        items, note = jailbreak.wrap(spec, jailbreak.templates(fetched.files), requests)
    else:
        items = bench.read(fetched.files, spec)
    if not items:
        raise CardgenError(f"benchmark {spec.name}: no records in {spec.source}.")
    seen: dict[str, str] = {}
    for it in items:
        if it.id in seen:
            raise CardgenError(
                f"benchmark {spec.name}: id {it.id!r} appears twice in {spec.source}."
            )
        seen[it.id] = it.id
    files = {f.name: file_sha256(f) for f in fetched.files}
    local_rev = hashlib.sha256("".join(sorted(files.values())).encode()).hexdigest()
    provenance = Provenance(
        benchmark=bench.name,
        title=bench.title,
        version=spec.version or bench.version,
        dataset_id=fetched.dataset_id or bench.dataset_id,
        revision=fetched.revision or f"sha256:{local_rev[:12]}",
        files=files,
        source=spec.source,
        license=license_id,
        license_restriction=restriction,
        citation=bench.citation,
        url=bench.url,
        records=len(items),
        note=note,
    )
    template = read_task_yaml(SUITE_DIR / CUSTOM_PACK_TEMPLATE / f"{CUSTOM_PACK_TEMPLATE}.yaml")
    base = template["metadata"]["cardgen"]
    packs = []
    for expected in ("refuse", "comply"):
        mine = [it for it in items if it.expected == expected]
        if not mine:
            continue
        name = bench.halves.get(expected, bench.name)
        what = "requests to refuse" if expected == "refuse" else "benign requests to answer"
        pack_spec = PackSpec.model_validate(
            {
                **base,
                "pack": name,
                "judges": ["keyword"],
                "margin": False,
                "headline": "refusal_rate" if expected == "refuse" else "over_refusal_rate",
                "description": f"{bench.title} {provenance.version}: {len(mine)} {what}",
            }
        )
        probes = [
            Probe(
                id=it.id,
                pack=name,
                category=it.category,
                framing=it.framing,
                prompt=it.prompt,
                expected=it.expected,
            )
            for it in mine
        ]
        packs.append(
            Pack(
                name=name,
                spec=pack_spec,
                folder=SUITE_DIR,
                probes=probes,
                custom=True,
                provenance=provenance,
            )
        )
    return packs
