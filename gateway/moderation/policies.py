"""ShieldGemma's harm policies and the prompts that ask it about one policy at a time.

ShieldGemma was trained to judge one policy per prompt: a text is scored once per harm
category, each time with that category's policy, from the probability that the model's
first token is ``Yes`` rather than ``No`` (the model card's scoring). A prompt is judged
against the policy as it applies to users (``The prompt shall not ...``), an answer
against the policy as it applies to the chatbot, with the prompt it answers beside it.

The categories are reported under these names (OpenAI's moderation names where the
policy means the same: ``harassment``, ``hate``, ``sexual``; ShieldGemma's dangerous
content policy covers more than any one OpenAI category and keeps its own name).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args


@dataclass(frozen=True, slots=True)
class Harm:
    """One policy: its category name, ShieldGemma's title and what it forbids."""

    category: str
    title: str
    forbids: str

    def prompt_rule(self) -> str:
        return (
            f'* "{self.title}": The prompt shall not contain or seek generation of {self.forbids}'
        )

    def answer_rule(self) -> str:
        return f'* "{self.title}": The chatbot shall not generate {self.forbids}'

    def image_rule(self) -> str:
        """ShieldGemma 2's policy text (its chat template wraps it in the question)."""
        return f"{self.title}: The image shall not contain content that {self.forbids}"


SHIELDGEMMA_HARMS: tuple[Harm, ...] = (
    Harm(
        "dangerous",
        "No Dangerous Content",
        "content that harms oneself and/or others (e.g., accessing or building firearms and "
        "explosive devices, promotion of terrorism, instructions for suicide).",
    ),
    Harm(
        "harassment",
        "No Harassment",
        "content that is malicious, intimidating, bullying, or abusive content targeting "
        "another individual (e.g., physical threats, denial of tragic events, disparaging "
        "victims of violence).",
    ),
    Harm(
        "hate",
        "No Hate Speech",
        "content that targeting identity and/or protected attributes (e.g., racial slurs, "
        "promotion of discrimination, calls to violence against protected groups) or "
        "dehumanizing/belittling/vilifying on the bases of race, ethnicity, religion, "
        "disability, age, nationality, veteran status, sexual orientation, gender, gender "
        "identity, caste, or any other protected status.",
    ),
    Harm(
        "sexual",
        "No Sexually Explicit Information",
        "content that contains references to sexual acts or other lewd content (e.g., "
        "sexually graphic descriptions, content aimed at causing arousal). Medical or "
        "scientific terms related to human anatomy or sex education are permitted.",
    ),
)
#: ShieldGemma 2's image policies, as its processor's defaults word them. One image is
#: judged once per policy (a chat of the image and the policy's text).
SHIELDGEMMA2_HARMS: tuple[Harm, ...] = (
    Harm(
        "dangerous",
        "No Dangerous Content",
        "facilitates or encourages activities that could cause real-world harm (e.g., "
        "building firearms and explosive devices, promotion of terrorism, instructions for "
        "suicide).",
    ),
    Harm(
        "sexual",
        "No Sexually Explicit content",
        "depicts explicit or graphic sexual acts (e.g., pornography, erotic nudity, "
        "depictions of rape or sexual assault).",
    ),
    Harm(
        "violence",
        "No Violence/Gore content",
        "depicts shocking, sensational, or gratuitous violence (e.g., excessive blood and "
        "gore, gratuitous violence against animals, extreme injury or moment of death).",
    ),
)
#: The policy families the catalog's ``moderation_policy`` names, and their harms: text
#: classifiers (the guard's and ``/v1/moderations``' texts) and image classifiers.
HARMS: dict[str, tuple[Harm, ...]] = {"shieldgemma": SHIELDGEMMA_HARMS}
IMAGE_HARMS: dict[str, tuple[Harm, ...]] = {"shieldgemma2": SHIELDGEMMA2_HARMS}
#: Every category a classifier reports, as request bodies name them.
Category = Literal["dangerous", "harassment", "hate", "sexual"]
CATEGORIES: tuple[str, ...] = get_args(Category)
#: The label tokens whose probabilities make a score.
YES, NO = "Yes", "No"

_QUESTION = (
    "Does the {what} violate the above principle? Your answer must start with 'Yes' or "
    "'No'. And then walk through step by step to be sure we answer correctly.\n"
)


def prompt_check(text: str, harm: Harm) -> str:
    """ShieldGemma's prompt asking whether a user's prompt breaks ``harm``'s policy."""
    return (
        "You are a policy expert trying to help determine whether a user prompt is in "
        "violation of the defined safety policies.\n\n"
        f"<start_of_turn>\nHuman Question: {text.strip()}\n<end_of_turn>\n\n"
        "Our safety principle is defined in the below:\n\n"
        f"{harm.prompt_rule()}\n\n===\n\n" + _QUESTION.format(what="human question")
    )


def answer_check(prompt: str, answer: str, harm: Harm) -> str:
    """ShieldGemma's prompt asking whether a chatbot's answer breaks ``harm``'s policy."""
    return (
        "You are a policy expert trying to help determine whether an AI response to prompt "
        "is in violation of the defined safety policies.\n\n"
        f"<start_of_turn>\nHuman Question: {prompt.strip()}\n<end_of_turn>\n\n"
        f"<start_of_turn>\nChatbot Response: {answer.strip()}\n<end_of_turn>\n\n"
        "Our safety principle is defined in the below:\n\n"
        f"{harm.answer_rule()}\n\n===\n\n" + _QUESTION.format(what="Chatbot Response")
    )
