"""Render papers as BibTeX: one entry per paper, LaTeX-escaped, with arXiv ids, DOIs and urls."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from metabench.catalog.model import Paper

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
# Combining mark -> LaTeX accent command, so "Serrà" becomes "Serr{\`a}" and classic 8-bit
# BibTeX sorts and prints it; letters without a plain decomposition stay UTF-8.
_ACCENTS = {
    "\u0300": "`",
    "\u0301": "'",
    "\u0302": "^",
    "\u0303": "~",
    "\u0304": "=",
    "\u0306": "u",
    "\u0307": ".",
    "\u0308": '"',
    "\u030a": "r",
    "\u030b": "H",
    "\u030c": "v",
    "\u0327": "c",
    "\u0328": "k",
}
_LETTERS = {
    "ø": r"{\o}",
    "Ø": r"{\O}",
    "ß": r"{\ss}",
    "æ": r"{\ae}",
    "Æ": r"{\AE}",
    "ł": r"{\l}",
    "Ł": r"{\L}",
}
_PAGES = re.compile(r"pp\. (\d+)-(\d+)")
_DOI_URL = re.compile(r"https?://(?:dx\.)?doi\.org/(\S+)")


def latex_escape(text: str) -> str:
    """Text made safe inside a braced BibTeX field: specials escaped, accents as LaTeX commands."""
    out = []
    for char in text:
        if char in _SPECIAL:
            out.append(_SPECIAL[char])
        elif char.isascii():
            out.append(char)
        elif char in _LETTERS:
            out.append(_LETTERS[char])
        else:
            out.append(_accented(char))
    return "".join(out)


def _accented(char: str) -> str:
    decomposed = unicodedata.normalize("NFD", char)
    base, marks = decomposed[0], decomposed[1:]
    if len(marks) != 1 or marks not in _ACCENTS or not base.isascii():
        return char
    command = _ACCENTS[marks]
    # Letter commands (\v, \c, ...) need their argument braced; symbol commands (\', \") do not.
    return "{\\" + command + ("{" + base + "}" if command.isalpha() else base) + "}"


def entry_type(paper: Paper) -> str:
    """@misc for preprints, @article for journals, @inproceedings for the rest (conferences)."""
    if paper.venue.startswith("arXiv"):
        return "misc"
    if "Journal" in paper.venue or paper.venue.startswith("Science"):
        return "article"
    return "inproceedings"


def _venue_without_pages(venue: str) -> str:
    venue = re.sub(r"\s*\(pp\. \d+-\d+\)", "", venue)
    return re.sub(r",\s*pp\. \d+-\d+", "", venue)


def entry(paper: Paper) -> str:
    """One BibTeX entry, fields in a fixed order; urls and DOIs are verbatim (checked at ingest)."""
    kind = entry_type(paper)
    fields: list[tuple[str, str]] = [
        ("author", " and ".join(latex_escape(name) for name in paper.authors)),
        # Double braces keep the title's capitalisation (MAML, DARTS) whatever the style.
        ("title", "{" + latex_escape(paper.title) + "}"),
    ]
    venue = latex_escape(_venue_without_pages(paper.venue))
    if kind == "misc":
        how = f"arXiv preprint arXiv:{paper.arxiv}" if paper.arxiv else venue
        fields.append(("howpublished", latex_escape(how)))
    else:
        fields.append(("journal" if kind == "article" else "booktitle", venue))
    fields.append(("year", str(paper.year)))
    pages = _PAGES.search(paper.venue)
    if pages:
        fields.append(("pages", f"{pages.group(1)}--{pages.group(2)}"))
    if paper.arxiv:
        fields += [("eprint", paper.arxiv), ("archivePrefix", "arXiv")]
    if paper.url:
        doi = _DOI_URL.fullmatch(paper.url)
        if doi:
            fields.append(("doi", doi.group(1)))
        fields.append(("url", paper.url))
    if paper.note:
        fields.append(("note", latex_escape(paper.note)))
    body = "".join(f"  {name} = {{{value}}},\n" for name, value in fields)
    return f"@{kind}{{{paper.cite_key},\n{body}}}\n"


def render_bibtex(papers: Iterable[Paper]) -> str:
    """A .bib file: one entry per paper, separated by blank lines."""
    return "\n".join(entry(paper) for paper in papers)
