"""Labeler names and the label errors: the rules every module that names a person shares (store and access).

Kept apart from labels so access.authz can use them while labels asks access.authz who may adjudicate.
"""

from __future__ import annotations

import unicodedata

from sqlmodel import Session, select

from qa0_label.store.models import LABEL_VALUES, Labeler, LabelerChange


class LabelError(ValueError):
    """A label request that cannot be honoured (bad value, unknown EB, ...)."""


class NotAllowed(PermissionError):
    """The labeler's role does not allow this action."""


_VALUE_LOOKUP = {v.lower(): v for v in LABEL_VALUES}


def normalize_value(value: str) -> str:
    """Return the canonical QA0 value for a case-insensitive input such as 'semipass'."""
    canonical = _VALUE_LOOKUP.get(str(value).strip().lower().replace("-", "").replace(" ", ""))
    if canonical is None:
        raise LabelError(f"unknown QA0 value {value!r}; expected one of {', '.join(LABEL_VALUES)}")
    return canonical


SYSTEM_LABELERS: tuple[str, ...] = ("archive", "model")
"""Names the system itself writes labels under (the importer's 'archive', the model); no person may use them."""

# Unicode categories a name must not contain: controls (ANSI escapes, NUL), format characters (zero-width
# spaces and joiners, bidi overrides and isolates, soft hyphen), surrogates, private use, unassigned.
_BAD_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible or bidi formatting character",
    "Cs": "a surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned character",
}


def name_key(name: str) -> str:
    """The form two names are compared in: normalised, then case-folded ('NewAoD' and 'newaod' are one person)."""
    return normalize_name(name, system_ok=True).casefold()


def normalize_name(name: str, *, system_ok: bool = False) -> str:
    """A labeler name in its stored form: NFC, trimmed, inner whitespace collapsed; LabelError when unusable.

    Refused: empty, longer than 80 characters, control / zero-width / bidi characters, and (unless
    system_ok, for the importer) the names the system writes labels under (SYSTEM_LABELERS).
    """
    text = unicodedata.normalize("NFC", str(name))
    for ch in text:
        category = unicodedata.category(ch)
        if category in _BAD_CATEGORIES and not ch.isspace():
            raise LabelError(
                f"labeler name contains {_BAD_CATEGORIES[category]} (U+{ord(ch):04X}); use letters, digits, "
                "spaces and punctuation only"
            )
    clean = " ".join(text.split())
    if not clean:
        raise LabelError("labeler name is empty")
    if len(clean) > 80:
        raise LabelError("labeler name is longer than 80 characters")
    if not system_ok and clean.casefold() in SYSTEM_LABELERS:
        raise LabelError(f"{clean!r} is reserved for labels the system writes; choose another name")
    return clean


MAX_COMMENT_CHARS = 2000
"""Longest comment or adjudication reason (the Label page's box holds as many)."""
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def normalize_comment(text: str | None, *, what: str = "comment") -> str | None:
    """A comment (or reason) in its stored form: NFC and trimmed, None when empty; LabelError when unusable.

    Refused: longer than MAX_COMMENT_CHARS, control characters other than line breaks and tabs (a terminal
    escape in an exported CSV), bidi overrides (they make a comment read differently from what it says),
    surrogates and unassigned characters. Other formatting characters (an emoji's zero-width joiner) pass.
    """
    if text is None:
        return None
    clean = unicodedata.normalize("NFC", str(text)).strip()
    for ch in clean:
        category = unicodedata.category(ch)
        if (category == "Cf" and ch in _BIDI_CONTROLS) or (
            category in _BAD_CATEGORIES and category != "Cf" and not ch.isspace()
        ):
            raise LabelError(f"{what} contains {_BAD_CATEGORIES[category]} (U+{ord(ch):04X})")
    if len(clean) > MAX_COMMENT_CHARS:
        raise LabelError(f"{what} is longer than {MAX_COMMENT_CHARS:,} characters ({len(clean):,})")
    return clean or None


def find_labeler(*, session: Session, name: str) -> Labeler | None:
    """The labeler NAME refers to: the same name in any case, or the person it was renamed or merged into."""
    clean = normalize_name(name, system_ok=True)
    exact = session.exec(select(Labeler).where(Labeler.name == clean)).first()
    if exact is not None:
        return exact
    key = clean.casefold()
    # The roster is small (people, not EBs): compare case-folded in Python, which SQLite's lower() cannot.
    for labeler in session.exec(select(Labeler)).all():
        if labeler.name.casefold() == key:
            return labeler
    moved = session.exec(select(LabelerChange).order_by(LabelerChange.id.desc())).all()  # type: ignore[union-attr]
    for change in moved:
        if change.from_name.casefold() == key:
            return session.get(Labeler, change.into_id)
    return None
