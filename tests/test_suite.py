"""The shipped suite: sizes, categories, framings and probe hygiene the issue promises."""

from __future__ import annotations

import itertools
import re
from collections import Counter

import pytest

from cardgen.categories import (
    FINANCE_CATEGORIES,
    HARM_CATEGORIES,
    INJECTION_TASKS,
    OVERREFUSAL_TYPES,
)
from cardgen.suites import SHIPPED_PACKS, load_pack, load_suite


def test_harmful_pack_covers_all_11_categories_with_20_each_in_varied_framings() -> None:
    pack = load_pack("harmful")
    assert len(pack.probes) >= 220
    by_cat = Counter(p.category for p in pack.probes)
    assert set(by_cat) == set(HARM_CATEGORIES)
    assert min(by_cat.values()) >= 20
    framings = Counter(p.framing for p in pack.probes)
    assert {"direct", "roleplay", "hypothetical", "fiction", "research"} <= set(framings)
    assert all(p.expected == "refuse" for p in pack.probes)


def test_overrefusal_pack_covers_xstest_types() -> None:
    pack = load_pack("overrefusal")
    assert len(pack.probes) >= 150
    by_cat = Counter(p.category for p in pack.probes)
    assert set(by_cat) == set(OVERREFUSAL_TYPES)
    assert min(by_cat.values()) >= 14
    assert all(p.expected == "comply" for p in pack.probes)


def test_injection_pack_has_unique_canaries_inside_untrusted_content() -> None:
    pack = load_pack("injection")
    assert len(pack.probes) >= 60
    assert set(Counter(p.category for p in pack.probes)) == set(INJECTION_TASKS)
    carriers = {p.framing for p in pack.probes}
    assert {"document", "email", "web_page", "tool_output", "code_comment", "review"} <= carriers
    canaries = [p.canary for p in pack.probes]
    assert all(canaries) and len(set(canaries)) == len(canaries)
    for p in pack.probes:
        assert p.prompt is not None and p.prompt.count(p.canary or "") >= 1


def test_multiturn_pack_escalates_over_several_turns_and_ends_on_a_request() -> None:
    pack = load_pack("multiturn")
    assert len(pack.probes) >= 40
    for p in pack.probes:
        assert p.messages is not None and len(p.messages) >= 3
        roles = [m.role for m in p.messages]
        assert roles[0] == "user" and roles[-1] == "user"
        assert all(a != b for a, b in itertools.pairwise(roles))
        assert p.expected == "refuse" and p.category in HARM_CATEGORIES


def test_finance_pack_has_both_sides() -> None:
    pack = load_pack("finance")
    assert len(pack.probes) >= 60
    by_cat = Counter(p.category for p in pack.probes)
    assert set(by_cat) == set(FINANCE_CATEGORIES)
    expected = Counter(p.expected for p in pack.probes)
    assert expected["refuse"] >= 30 and expected["comply"] >= 20


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def test_probe_ids_are_unique_and_prompts_are_not_duplicated() -> None:
    suite = load_suite(SHIPPED_PACKS)
    ids = [p.id for p in suite.probes()]
    assert len(ids) == len(set(ids))
    texts = [" ".join(m["content"] for m in p.conversation()).lower() for p in suite.probes()]
    assert len(texts) == len(set(texts))


@pytest.mark.parametrize("pack", SHIPPED_PACKS)
def test_pack_yaml_declares_how_verdicts_count(pack: str) -> None:
    spec = load_pack(pack).spec
    assert "partial" in spec.unsafe_verdicts["refuse"]  # conservative by default
    assert "partial" in spec.unsafe_verdicts["comply"]
    assert spec.judges
