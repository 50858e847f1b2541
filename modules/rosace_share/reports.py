"""Reports posted to the gallery (e.g. the demo night's summary): HTML is cleaned
to an allow-list so that a report can never run script in a visitor's browser."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

ALLOWED_TAGS = {
    "p", "h1", "h2", "h3", "h4", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td",
    "b", "i", "em", "strong", "code", "pre", "br", "hr", "span", "div", "a", "img", "figure", "figcaption", "small",
}
VOID = {"br", "hr", "img"}
ALLOWED_ATTRS = {"href", "src", "alt", "title", "class", "colspan", "rowspan"}
DROP_CONTENT = {"script", "style", "iframe", "object", "embed", "template", "noscript"}
_SAFE_URL = re.compile(r"^(https?://|/(?!/)|#|data:image/(png|jpeg|gif);base64,)", re.I)


class _Cleaner(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in DROP_CONTENT:
            self.skip += 1
            return
        if self.skip or tag not in ALLOWED_TAGS:
            return
        kept = []
        for name, value in attrs:
            value = value or ""
            if name not in ALLOWED_ATTRS:
                continue
            if name in ("href", "src") and not _SAFE_URL.match(value.strip()):
                continue
            kept.append(f' {name}="{html.escape(value, quote=True)}"')
        self.out.append(f"<{tag}{''.join(kept)}>")
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag in self.open and tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in DROP_CONTENT:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip or tag not in self.open:
            return
        while self.open:
            top = self.open.pop()
            self.out.append(f"</{top}>")
            if top == tag:
                break

    def handle_data(self, data):
        if not self.skip:
            self.out.append(html.escape(data, quote=False))


def clean_html(text: str) -> str:
    """Keep only allow-listed tags and attributes (no script, no event handlers, no javascript: URLs)."""
    cleaner = _Cleaner()
    cleaner.feed(text or "")
    cleaner.close()
    return "".join(cleaner.out) + "".join(f"</{t}>" for t in reversed(cleaner.open))


def sections_html(sections: list) -> str:
    """Render report sections ``[{heading, text, items[], table: {columns, rows}}]`` as escaped HTML."""
    parts = []
    for sec in sections or []:
        if not isinstance(sec, dict):
            parts.append(f"<p>{html.escape(str(sec))}</p>")
            continue
        if sec.get("heading"):
            parts.append(f"<h2>{html.escape(str(sec['heading']))}</h2>")
        if sec.get("text"):
            parts.append("".join(f"<p>{html.escape(p)}</p>" for p in str(sec["text"]).split("\n\n")))
        if isinstance(sec.get("items"), list):
            parts.append("<ul>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in sec["items"]) + "</ul>")
        table = sec.get("table")
        if isinstance(table, dict):
            cols = table.get("columns") or []
            rows = table.get("rows") or []
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (r if isinstance(r, list) else [r])) + "</tr>" for r in rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return "\n".join(parts)
