"""Does a text file hold the language a model expects? Two cheap signs, checked before a long
decode: the file's name (`test.fr.gz` says French) and its character trigrams, compared with
a profile of the text the model was trained on (the held-out split's, kept in the checkpoint).

On Multi30k, the cosine between a language's profile and 10 lines of its own test text is
0.64 or more, and at most 0.21 for any other of de, en, fr and cs (100 lines: 0.91 and 0.21),
hence the threshold below and the ten lines it needs.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

PROFILE_SIZE = 300  # the most frequent trigrams kept
MIN_LINES = 10  # fewer lines say too little to warn on
SAME_LANGUAGE = 0.4  # cosine similarity: at least this for text of the profile's language

# ISO 639-1: a file suffix that is one of these names a language.
ISO_639_1 = set(
    "aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy "
    "da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht "
    "hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky "
    "la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny "
    "oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss "
    "st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo "
    "za zh zu".split()
)


def trigram_profile(lines: list[str]) -> dict[str, float]:
    """The relative frequencies of the most frequent character trigrams of lines (lowercased,
    spaces collapsed, each line padded with a space at both ends)."""
    counts: Counter[str] = Counter()
    for line in lines:
        text = f" {' '.join(line.lower().split())} "
        counts.update(text[i : i + 3] for i in range(len(text) - 2))
    total = sum(counts.values()) or 1
    return {gram: n / total for gram, n in counts.most_common(PROFILE_SIZE)}


def held_out_profiles(texts: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """The profiles a checkpoint keeps: language -> the profile of its held-out text."""
    return {lang: trigram_profile(lines) for lang, lines in texts.items()}


def similarity(a: dict[str, float], b: dict[str, float]) -> float:
    """Cosine similarity of two profiles (0: nothing shared, 1: the same frequencies)."""
    dot = sum(weight * b.get(gram, 0.0) for gram, weight in a.items())
    norms = math.sqrt(sum(w * w for w in a.values()) * sum(w * w for w in b.values()))
    return dot / norms if norms else 0.0


def closest_language(line: str, profiles: dict[str, dict[str, float]]) -> str | None:
    """The language whose profile line's trigrams are most like; None for an empty line. Each
    of Multi30k's 1000 test lines of de, en and fr gets its own against profiles of valid."""
    if not line.strip():
        return None
    found = trigram_profile([line])
    return max(profiles, key=lambda lang: similarity(found, profiles[lang]))


def percent_in(lines: list[str], lang: str, profiles: dict[str, dict[str, float]]) -> float:
    """The percentage of lines that read as lang (each by its closest profile)."""
    hits = sum(closest_language(line, profiles) == lang for line in lines)
    return 100.0 * hits / max(len(lines), 1)


def suffix_language(path: str) -> str | None:
    """The language a file's name claims: test.fr.gz -> "fr"; None when it names none."""
    name = Path(path).name.removesuffix(".gz")
    suffix = name.rpartition(".")[2].lower() if "." in name else ""
    return suffix if suffix in ISO_639_1 else None


def one_of(langs: list[str]) -> str:
    """["de"] -> "de"; ["de", "en", "fr"] -> "de, en or fr"."""
    return langs[0] if len(langs) == 1 else f"{', '.join(langs[:-1])} or {langs[-1]}"


def language_warnings(
    path: str, lines: list[str], role: str, expected: list[str], opposite: list[str], profiles
) -> list[str]:
    """One line per sign that path's lines are in none of the expected languages (role:
    "source" or "target"; opposite: the other side's languages; profiles: language ->
    profile, or None when the model keeps none)."""
    warnings = []
    named = suffix_language(path)
    if named is not None and named not in expected:
        warnings.append(
            f"{path}: named as {named} text, but the model's {role} is {one_of(expected)}"
        )
    if not profiles or len([line for line in lines if line.strip()]) < MIN_LINES:
        return warnings
    found = trigram_profile(lines)
    scores = {lang: similarity(found, profile) for lang, profile in profiles.items()}
    own = max(scores.get(lang, 0.0) for lang in expected)
    if own >= SAME_LANGUAGE:
        return warnings
    best = max(scores, key=scores.get)
    measured = f"character trigram similarity {scores[best]:.2f} against {own:.2f}"
    if scores[best] >= SAME_LANGUAGE:
        side = ", the model's other side" if best in opposite else ""
        guess = "files swapped?" if best in opposite else "another language?"
        warnings.append(
            f"{path}: reads as {best} text{side}, not {one_of(expected)} ({measured}): {guess}"
        )
    else:
        warnings.append(
            f"{path}: unlike the {one_of(expected)} text the model was trained on (character "
            f"trigram similarity {own:.2f}, below {SAME_LANGUAGE}): another language?"
        )
    return warnings
