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

ALL_CATEGORIES: dict[str, str] = {
    **HARM_CATEGORIES,
    **OVERREFUSAL_TYPES,
    **INJECTION_TASKS,
    **FINANCE_CATEGORIES,
}


def label(category: str) -> str:
    """Human-readable name of a category id (the id itself for user-defined categories)."""
    return ALL_CATEGORIES.get(category, category.replace("_", " ").capitalize())
