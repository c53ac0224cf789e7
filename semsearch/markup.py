"""Text from papers written into Markdown that other people read: a digest, a line proposed to a
curated list. One rule for both: what arXiv or a record says is shown as words, never as markup.

GitHub renders these files, so the rule covers its flavour too: inline markup (links, images,
emphasis, code, HTML, strike-through, a table cell's `|`), a block a line's first text can open (a
heading, a list, a quote), the links GitHub makes of bare `https://…`, `www.…` and e-mail text, and an
arXiv address in a title, which a list parser would take for the paper's own link.
"""

from __future__ import annotations

import re

from semsearch.paper import one_line

# ASCII punctuation that can open or close inline markup; CommonMark lets a backslash escape any of it.
_INLINE = re.compile(r"([\\`*_\[\]<>|~]|&(?=#?[0-9A-Za-z]+;))")  # "&" where it begins an entity
# What a line's first text can open: an ATX heading, a bullet, a setext underline or a thematic
# break (a quote's ">" is escaped inline); and a numbered item, escaped after its number.
_BLOCK_MARK = re.compile(r"^([#=+-])")
_NUMBER_MARK = re.compile(r"^(\d{1,9})(?=[.)](?:\s|$))")
# Addresses GitHub links by themselves (web and e-mail), and the arXiv addresses and DOIs a list
# parser reads an id from: a backslash before their ':', '.' or '@' keeps them text (shown as they were).
_AUTOLINK = re.compile(
    r"(?<=[A-Za-z])(:)(?=//)|(?<=www)(\.)|(?<=arxiv)(\.)(?=org/)|(?<=10)(\.)(?=48550/)|(?<=\S)(@)(?=\w)", re.I
)


def text(value: str) -> str:
    """`value` as one line of Markdown that shows as the same words and nothing else."""
    escaped = _INLINE.sub(r"\\\1", one_line(value))
    escaped = _AUTOLINK.sub(r"\\\g<0>", escaped)
    return _NUMBER_MARK.sub(r"\1\\", _BLOCK_MARK.sub(r"\\\1", escaped))
