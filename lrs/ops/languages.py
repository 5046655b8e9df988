"""Accept-Language applied to a language map, for format=canonical (xAPI Communication 2.1.3:
"apply the Accept-Language header as described in RFC 2616", to each language map on its own).

RFC 2616 14.4 (and RFC 4647 3.3.1, basic filtering): a range matches a tag when it equals the tag
or is a prefix of it followed by '-', case-insensitively; a tag's quality is that of the longest
range that matches it; '*' matches every tag no other range matches; q=0 means not acceptable.
"""

from __future__ import annotations

Ranges = list[tuple[str, float]]  # (lower-case language range, quality), in header order


def parse_accept_language(raw: str) -> Ranges:
    """The header's ranges with their qualities (1 when not given; a malformed q counts as 0)."""
    ranges: Ranges = []
    for part in raw.split(","):
        tag, *params = (p.strip() for p in part.split(";"))
        if not tag:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        ranges.append((tag.lower(), q))
    return ranges


def _quality(tag: str, ranges: Ranges) -> tuple[float, int] | None:
    """(quality, index of the range that gave it) for ``tag``, or None when no range matches."""
    tag = tag.lower()
    best: tuple[int, float, int] | None = None  # (length of the range, quality, index)
    star: tuple[float, int] | None = None
    for i, (r, q) in enumerate(ranges):
        if r == "*":
            if star is None:
                star = (q, i)
        elif (tag == r or tag.startswith(r + "-")) and (best is None or len(r) > best[0]):
            best = (len(r), q, i)
    if best is not None:
        return best[1], best[2]
    return star


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
    wanted = [r.split("-")[0] for r, q in sorted(ranges, key=lambda rq: -rq[1]) if q > 0 and r != "*"]
    for primary in wanted:
        for k in allowed:
            if k.lower().split("-")[0] == primary:
                return {k: langmap[k]}
    return {allowed[0]: langmap[allowed[0]]}
