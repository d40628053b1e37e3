"""A first run on a real checkpoint, as a new user makes it: the four things they tripped over
(issue 19): identical weights compared, `limit` taking the first N probes, the model named by
its local path, and commands listed twice."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from test_compare_gate import TODAY, harmful, run
from test_evidence import with_identity

from cardgen.compare import compare
from cardgen.errors import CardgenError
from cardgen.evidence import Evidence, display_name, gather
from cardgen.gate import decide, load_policy
from cardgen.identity import fingerprint
from cardgen.suites import load_pack, stratified_sample

# --------------------------------------------------------------------------------------------
# 1. The same weights on both sides


def test_compare_refuses_two_runs_of_the_same_weights_unless_allowed(
    tiny_sharded: Path, tmp_path: Path
) -> None:
    ident = fingerprint(tiny_sharded)
    base = with_identity(run(harmful(10)), ident)
    tuned = with_identity(run(harmful(10, {1})), ident)
    with pytest.raises(CardgenError, match=f"same weights \\(sha256:{ident.weights_digest}\\)"):
        compare(base, tuned)
    comp = compare(base, tuned, allow_same=True)
    assert comp.same_weights and any("--allow-same" in n for n in comp.notes)
    policy, source, _ = load_policy()
    dec = decide(comp, policy, as_of=TODAY, policy_source=source)
    assert dec.verdict == "BLOCK"  # a loss still blocks: never weaker than without the flag
    assert any("same weights" in n for n in dec.notes)
    level = compare(base, with_identity(run(harmful(10)), ident), allow_same=True)
    quiet = decide(level, policy, as_of=TODAY, policy_source=source)
    assert quiet.verdict == "INSUFFICIENT_EVIDENCE"  # "no change" against itself proves nothing
    assert any("the comparison proves nothing" in r for r in quiet.reasons)
    from cardgen.pack import context

    ev = gather(identity=ident, base_run=base, tuned_run=tuned, comparison=comp, decision=dec)
    ctx, _ = context(ev, None, "auditor", "0" * 64)
    assert ctx["same_weights"] is True


def test_cardgen_compare_and_run_refuse_identical_digests(
    tiny_sharded: Path, tmp_path: Path
) -> None:
    from test_cli import cardgen_cli
    from test_run import small_config

    ident = fingerprint(tiny_sharded)
    for name, r in (("a.json", harmful(5)), ("b.json", harmful(5, {1}))):
        (tmp_path / name).write_text(with_identity(run(r), ident).model_dump_json())
    r = cardgen_cli("compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                    "--out", str(tmp_path / "c.json"))  # fmt: skip
    assert r.returncode == 2 and ident.weights_digest in r.stderr and "--allow-same" in r.stderr
    assert not (tmp_path / "c.json").exists()
    r = cardgen_cli("compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                    "--out", str(tmp_path / "c.json"), "--allow-same")  # fmt: skip
    assert r.returncode == 0 and json.loads((tmp_path / "c.json").read_text())["same_weights"]
    (tmp_path / "run").mkdir()
    config = small_config(tmp_path / "run", (tiny_sharded, tiny_sharded))
    r = cardgen_cli("run", str(config))
    assert r.returncode == 2 and f"same weights (sha256:{ident.weights_digest})" in r.stderr
    assert not list((tmp_path / "run" / "out" / "stages").glob("*.run.json"))  # no evaluation


# --------------------------------------------------------------------------------------------
# 2. A quick run is a stratified sample


def test_limit_spreads_over_every_category_and_framing() -> None:
    pack = load_pack("harmful")
    cats = Counter(p.category for p in pack.probes)
    assert len(cats) == 11
    quick = stratified_sample(pack.probes, 11, seed=1234)
    assert len(quick) == 11 and set(Counter(p.category for p in quick)) == set(cats)
    assert quick[0].id != pack.probes[0].id or len({p.category for p in quick}) == 11
    two = stratified_sample(pack.probes, 22, seed=1234)
    assert set(Counter(p.category for p in two).values()) == {2}
    for cat in cats:  # the two probes of a category come from different framings
        framings = {p.framing for p in two if p.category == cat}
        all_framings = {p.framing for p in pack.probes if p.category == cat}
        assert len(framings) == min(2, len(all_framings)), cat
    assert stratified_sample(pack.probes, 22, seed=1234) == two  # deterministic
    assert stratified_sample(pack.probes, 22, seed=7) != two  # and the seed is what draws it
    assert stratified_sample(pack.probes, 10_000, seed=1) == pack.probes
    old_way = pack.probes[:3]  # what `limit: 3` used to take: one category of eleven
    assert len({p.category for p in old_way}) == 1
    assert len({p.category for p in stratified_sample(pack.probes, 3, seed=1234)}) == 3


def test_a_limited_eval_runs_the_sample_and_says_so(tiny_sharded: Path, tmp_path: Path) -> None:
    from cardgen.evalrun import Decoding
    from cardgen.evaluate import ModelTarget, evaluate
    from cardgen.judges import ALWAYS, build_judges
    from cardgen.suites import load_suite

    suite = load_suite(["harmful"])
    result = evaluate(ModelTarget(path=str(tiny_sharded), batch_size=4), suite,
                      build_judges(ALWAYS), Decoding(max_gen_toks=4, limit=11),
                      workdir=tmp_path / "w")  # fmt: skip
    measured = [r for r in result.probes if r.status == "measured"]
    assert len(measured) == 11 and len({r.category for r in measured}) == 11
    assert sum(r.status == "not_run" for r in result.probes) == len(result.probes) - 11
    assert any("A sample, not the whole suite" in n and "stratified" in n for n in result.notes)


# --------------------------------------------------------------------------------------------
# 3. The model's name is never its local path


def test_the_documents_name_the_model_by_config_hub_or_weights_never_a_path(
    tiny_sharded: Path, tmp_path: Path
) -> None:
    from cardgen.pipeline import document_name
    from cardgen.runconfig import RunConfig

    ident = fingerprint(tiny_sharded)
    local = Evidence.model_construct(identity=ident, tuned_run=None)
    assert display_name(local) == tiny_sharded.name  # the directory's name, not its path
    assert "/" not in display_name(local)
    arch = ident.architecture
    assert arch is not None
    for named, shown in (("acme/advisor-v3", "acme/advisor-v3"),
                         (str(tmp_path / "checkpoints" / "x"), tiny_sharded.name)):  # fmt: skip
        i2 = ident.model_copy(update={"architecture": arch.model_copy(
            update={"name_or_path": named})})  # fmt: skip
        assert display_name(Evidence.model_construct(identity=i2, tuned_run=None)) == shown
    cfg = RunConfig.model_validate({"tuned": {"model": "/home/u/checkpoints/x"},
                                    "base": {"model": "hf://org/base"},
                                    "hub": {"repo": "acme/advisor"}})  # fmt: skip
    assert document_name(cfg) == "acme/advisor"
    cfg2 = cfg.model_copy(update={"card": cfg.card.model_copy(update={"model_name": "Advisor"})})
    assert document_name(cfg2) == "Advisor"
    assert document_name(cfg.model_copy(update={"hub": None})) is None


# --------------------------------------------------------------------------------------------
# 4. Each command once, with the config's digest


def test_exact_commands_list_each_command_once_with_the_config_digest(
    tiny_sharded: Path,
) -> None:
    from cardgen.pack import context

    ident = fingerprint(tiny_sharded)
    cmd = ["cardgen", "run", "cardgen.yaml"]
    base = run(harmful(10)).model_copy(update={"command": cmd})
    tuned = with_identity(run(harmful(10, {1})), ident).model_copy(update={"command": cmd})
    comp = compare(base, tuned)
    sha = "ab" * 32
    ev = gather(identity=ident, base_run=base, tuned_run=tuned, comparison=comp,
                config_sha256=sha)  # fmt: skip
    ctx, _ = context(ev, None, "auditor", "0" * 64)
    assert ctx["method"]["commands"] == [f"cardgen run cardgen.yaml   (config sha256:{sha})"]
    assert ctx["reproduce"][0] == f"cardgen run cardgen.yaml   (config sha256:{sha})"
    assert sum("cardgen run" in c for c in ctx["reproduce"]) == 1
