"""IRC wildcard masks: the same answers as a plain recursive matcher, and no blow-up on adversarial masks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from linechat.services.chat.names import fold, mask_matches


def reference(mask: str, text: str) -> bool:
    """Backtracking reference (exponential on purpose: only small inputs reach it)."""
    if not mask:
        return not text
    if mask[0] == "*":
        return any(reference(mask[1:], text[i:]) for i in range(len(text) + 1))
    return bool(text) and (mask[0] == "?" or mask[0] == text[0]) and reference(mask[1:], text[1:])


@settings(max_examples=1000, deadline=None)
@given(st.text("ab*?!.[", max_size=8), st.text("abAB!.[", max_size=10))
def test_matches_the_reference(mask: str, text: str) -> None:
    assert mask_matches(mask, text) == reference(fold(mask), fold(text))


def test_adversarial_masks_answer() -> None:
    """30 stars over a 500-character text: a backtracking matcher would not finish; this answers both ways."""
    mask = "*a" * 30 + "*b"
    assert not mask_matches(mask, "a" * 500)
    assert mask_matches(mask, "a" * 500 + "b")
    assert mask_matches("N*!*@*.Example", "nick!user@host.example")
