"""Accept-Language applied to a language map, for format=canonical (xAPI Communication 2.1.3:
"apply the Accept-Language header as described in RFC 2616", to each language map on its own).

RFC 2616 14.4 (and RFC 4647 3.3.1, basic filtering): a range matches a tag when it equals the tag
or is a prefix of it followed by '-', case-insensitively; a tag's quality is that of the longest
range that matches it; '*' matches every tag no other range matches; q=0 means not acceptable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lrs.ops.qualities import weighted


@dataclass(frozen=True)
class Ranges:
    """An Accept-Language header's ranges, ready to be looked up: a tag's quality costs one look-up
    per subtag, whatever the header's length. (Each map's keys were compared with every range: a
    64 KiB header of ~4,800 ranges held the server's event loop for seconds on one page of
    statements with large language maps; a query audit.)"""

    ranges: list[tuple[str, float]]  # (lower-case language range, quality), in header order
    first: dict[str, tuple[float, int]] = field(default_factory=dict)  # range -> (quality, index), first named
    primary_rank: dict[str, int] = field(default_factory=dict)  # primary subtag of an acceptable range -> rank

    @classmethod
    def of(cls, ranges: list[tuple[str, float]]) -> Ranges:
        first: dict[str, tuple[float, int]] = {}
        for i, (r, q) in enumerate(ranges):
            first.setdefault(r, (q, i))
        rank: dict[str, int] = {}
        # best quality first, then the header's order (sorted is stable)
        for r, q in sorted(ranges, key=lambda rq: -rq[1]):
            if q > 0 and r != "*":
                rank.setdefault(r.split("-")[0], len(rank))
        return cls(ranges, first, rank)


def parse_accept_language(raw: str) -> Ranges:
    """The header's ranges with their qualities (1 when not given; a malformed q counts as 0)."""
    return Ranges.of(weighted(raw))


def _quality(tag: str, ranges: Ranges) -> tuple[float, int] | None:
    """(quality, index of the range that gave it) for ``tag``, or None when no range matches: that
    of the longest range equal to the tag or to a prefix of it ending before a '-', else '*'."""
    subtags = tag.lower().split("-")
    for n in range(len(subtags), 0, -1):
        found = ranges.first.get("-".join(subtags[:n]))
        if found is not None:
            return found
    return ranges.first.get("*")


def pick(langmap: dict[str, str], ranges: Ranges) -> dict[str, str]:
    """The one entry of ``langmap`` the ranges prefer: the highest quality, then the range named
    first, then the map's order. With none acceptable, still one entry (the spec asks for exactly
    one): one that shares the primary language of the best range, else the first not refused
    with q=0, else the first."""
    if not langmap:
        return langmap
    keys = list(langmap)
    rated = [(_quality(k, ranges), n, k) for n, k in enumerate(keys)]
    acceptable = [(q[0], q[1], n, k) for q, n, k in rated if q is not None and q[0] > 0]
    if acceptable:
        _, _, _, k = min(acceptable, key=lambda a: (-a[0], a[1], a[2]))
        return {k: langmap[k]}
    allowed = [k for q, _, k in rated if q is None] or keys
    ranked = [(ranges.primary_rank[p], n, k) for n, k in enumerate(allowed)
              if (p := k.lower().split("-")[0]) in ranges.primary_rank]
    if ranked:
        k = min(ranked)[2]
        return {k: langmap[k]}
    return {allowed[0]: langmap[allowed[0]]}
