"""One set of category names, used by the suites, the data audit and every report."""

from __future__ import annotations

#: HEx-PHI's 11 harm categories (Qi et al., 2023), the policy categories of the `harmful` and
#: `multiturn` packs and of the data audit's lexicon.
HARM_CATEGORIES: dict[str, str] = {
    "illegal_activity": "Illegal activity",
    "child_abuse": "Child abuse content",
    "hate_harass_violence": "Hate, harassment and violence",
    "malware": "Malware",
    "physical_harm": "Physical harm",
    "economic_harm": "Economic harm",
    "fraud_deception": "Fraud and deception",
    "adult_content": "Adult content",
    "political_campaigning": "Political campaigning",
    "privacy_violation": "Privacy violation",
    "tailored_financial_advice": "Tailored financial advice",
}

#: XSTest's 10 types of safe prompts that look unsafe (Röttger et al., 2024): the `overrefusal`
#: pack.
OVERREFUSAL_TYPES: dict[str, str] = {
    "homonyms": "Homonyms",
    "figurative_language": "Figurative language",
    "safe_targets": "Safe targets",
    "safe_contexts": "Safe contexts",
    "definitions": "Definitions",
    "real_discrimination_nonsense_group": "Real discrimination, nonsense group",
    "nonsense_discrimination_real_group": "Nonsense discrimination, real group",
    "historical_events": "Historical events",
    "public_privacy": "Privacy (public figures)",
    "fictional_privacy": "Privacy (fictional)",
}

#: The legitimate task an injection probe carries untrusted content for.
INJECTION_TASKS: dict[str, str] = {
    "summarise": "Summarise",
    "translate": "Translate",
    "classify": "Classify",
    "extract": "Extract",
}

#: The wealth-management domain pack: what to decline and what to answer.
FINANCE_CATEGORIES: dict[str, str] = {
    "guaranteed_returns": "Guaranteeing returns",
    "mis_selling_vulnerable": "Mis-selling to vulnerable customers",
    "insider_trading": "Insider trading",
    "market_manipulation": "Market manipulation",
    "structuring": "Structuring to evade reporting",
    "kyc_forgery": "Forging KYC documents",
    "unsuitable_advice": "Advice without a suitability check",
    "product_explanation": "Explaining products",
    "fees": "Explaining fees",
    "risk_explanation": "Explaining risk",
}

#: The finance pack's half that a safe assistant declines (the rest it answers).
FINANCE_DECLINE = frozenset({
    "guaranteed_returns", "mis_selling_vulnerable", "insider_trading", "market_manipulation",
    "structuring", "kyc_forgery", "unsuitable_advice",
})  # fmt: skip

#: Llama Guard 3 / 4's hazard codes (the MLCommons hazard taxonomy, as its model card lists them):
#: code -> (name, the suite category it falls under). One table, here with the other names.
LLAMA_GUARD_HAZARDS: dict[str, tuple[str, str]] = {
    "S1": ("Violent Crimes", "hate_harass_violence"),
    "S2": ("Non-Violent Crimes", "illegal_activity"),
    "S3": ("Sex-Related Crimes", "illegal_activity"),
    "S4": ("Child Sexual Exploitation", "child_abuse"),
    "S5": ("Defamation", "fraud_deception"),
    "S6": ("Specialized Advice", "tailored_financial_advice"),
    "S7": ("Privacy", "privacy_violation"),
    "S8": ("Intellectual Property", "illegal_activity"),
    "S9": ("Indiscriminate Weapons", "physical_harm"),
    "S10": ("Hate", "hate_harass_violence"),
    "S11": ("Suicide & Self-Harm", "physical_harm"),
    "S12": ("Sexual Content", "adult_content"),
    "S13": ("Elections", "political_campaigning"),
    "S14": ("Code Interpreter Abuse", "malware"),
}

#: The public benchmarks' own categories (as ids: `suites.benchmarks.slug` of their names) ->
#: (their name, the suite category they fall under, or None where none fits). One table, here
#: with the other names; a category missing from it is shown as "not mapped".
BENCHMARK_CATEGORIES: dict[str, dict[str, tuple[str, str | None]]] = {
    "harmbench": {
        "chemical_biological": ("Chemical & biological weapons/drugs", "physical_harm"),
        "illegal": ("Illegal activities", "illegal_activity"),
        "misinformation_disinformation": ("Misinformation & disinformation", "fraud_deception"),
        "harmful": ("General harm", "physical_harm"),
        "harassment_bullying": ("Harassment & bullying", "hate_harass_violence"),
        "cybercrime_intrusion": ("Cybercrime & unauthorized intrusion", "malware"),
        "copyright": ("Copyright violations", "illegal_activity"),
    },
    "strongreject": {
        "disinformation_and_deception": ("Disinformation and deception", "fraud_deception"),
        "hate_harassment_and_discrimination": (
            "Hate, harassment and discrimination",
            "hate_harass_violence",
        ),
        "illegal_goods_and_services": ("Illegal goods and services", "illegal_activity"),
        "non_violent_crimes": ("Non-violent crimes", "illegal_activity"),
        "sexual_content": ("Sexual content", "adult_content"),
        "violence": ("Violence", "hate_harass_violence"),
    },
    "xstest": {
        "homonyms": ("Homonyms", "homonyms"),
        "figurative_language": ("Figurative language", "figurative_language"),
        "safe_targets": ("Safe targets", "safe_targets"),
        "safe_contexts": ("Safe contexts", "safe_contexts"),
        "definitions": ("Definitions", "definitions"),
        "real_group_nons_discr": (
            "Real discrimination, nonsense group",
            "real_discrimination_nonsense_group",
        ),
        "nons_group_real_discr": (
            "Nonsense discrimination, real group",
            "nonsense_discrimination_real_group",
        ),
        "historical_events": ("Historical events", "historical_events"),
        "privacy_public": ("Privacy (public figures)", "public_privacy"),
        "privacy_fictional": ("Privacy (fictional)", "fictional_privacy"),
        "contrast_homonyms": ("Contrast: homonyms", "physical_harm"),
        "contrast_figurative_language": ("Contrast: figurative language", "physical_harm"),
        "contrast_safe_targets": ("Contrast: unsafe targets", "physical_harm"),
        "contrast_safe_contexts": ("Contrast: unsafe contexts", "illegal_activity"),
        "contrast_definitions": ("Contrast: definitions", "illegal_activity"),
        "contrast_discr": ("Contrast: discrimination", "hate_harass_violence"),
        "contrast_historical_events": ("Contrast: historical events", "hate_harass_violence"),
        "contrast_privacy": ("Contrast: privacy", "privacy_violation"),
    },
    "donotanswer": {
        "information_hazard": ("Information hazards", "privacy_violation"),
        "malicious_uses": ("Malicious uses", "illegal_activity"),
        "discrimination_exclusion_toxicity_hateful_offensive": (
            "Discrimination, exclusion, toxicity, hateful, offensive",
            "hate_harass_violence",
        ),
        "misinformation_harms": ("Misinformation harms", "fraud_deception"),
        "human_chatbox": ("Human-chatbot interaction harms", None),
        "human_chatbot_interaction_harms": ("Human-chatbot interaction harms", None),
        "risks_from_leaking_or_inferring_sensitive_information_organization_gov": (
            "Leaking sensitive information (organisation/government)",
            "privacy_violation",
        ),
        "compromise_privacy_by_leaking_or_inferring_private_information_person_individual": (
            "Compromising an individual's privacy",
            "privacy_violation",
        ),
        "assisting_illegal_activities": ("Assisting illegal activities", "illegal_activity"),
        "nudging_or_advising_users_to_perform_unethical_or_unsafe_actions": (
            "Nudging users to unethical or unsafe actions",
            "physical_harm",
        ),
        "reducing_the_cost_of_disinformation_campaigns": (
            "Reducing the cost of disinformation campaigns",
            "fraud_deception",
        ),
        "social_stereotypes_and_unfair_discrimination": (
            "Social stereotypes and unfair discrimination",
            "hate_harass_violence",
        ),
        "toxic_language_hate_speech": ("Toxic language (hate speech)", "hate_harass_violence"),
        "adult_content": ("Adult content", "adult_content"),
        "disseminating_false_or_misleading_information": (
            "Disseminating false or misleading information",
            "fraud_deception",
        ),
        "causing_material_harm_by_disseminating_misinformation_e_g_in_medicine_or_law": (
            "Material harm through misinformation (medicine, law)",
            "fraud_deception",
        ),
        "mental_health_or_overreliance_crisis": ("Mental health or over-reliance crisis", None),
        "treat_chatbot_as_a_human": ("Treating the chatbot as a human", None),
    },
    "jbb": {
        "harassment_discrimination": ("Harassment/Discrimination", "hate_harass_violence"),
        "malware_hacking": ("Malware/Hacking", "malware"),
        "physical_harm": ("Physical harm", "physical_harm"),
        "economic_harm": ("Economic harm", "economic_harm"),
        "fraud_deception": ("Fraud/Deception", "fraud_deception"),
        "disinformation": ("Disinformation", "fraud_deception"),
        "sexual_adult_content": ("Sexual/Adult content", "adult_content"),
        "privacy": ("Privacy", "privacy_violation"),
        "expert_advice": ("Expert advice", "tailored_financial_advice"),
        "government_decision_making": ("Government decision-making", "political_campaigning"),
    },
    "advbench": {"harmful_behaviors": ("Harmful behaviours (uncategorised)", None)},
}


def benchmark_category(benchmark: str, category: str) -> tuple[str, str | None]:
    """(the benchmark's name for ``category``, the suite category or None)."""
    return BENCHMARK_CATEGORIES.get(benchmark, {}).get(
        category, (category.replace("_", " ").capitalize(), None)
    )


ALL_CATEGORIES: dict[str, str] = {
    **HARM_CATEGORIES,
    **OVERREFUSAL_TYPES,
    **INJECTION_TASKS,
    **FINANCE_CATEGORIES,
}


def label(category: str) -> str:
    """Human-readable name of a category id (the id itself for user-defined categories)."""
    return ALL_CATEGORIES.get(category, category.replace("_", " ").capitalize())
