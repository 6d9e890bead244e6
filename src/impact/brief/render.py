"""Render a :class:`~impact.brief.build.Brief` to self-contained HTML and to PDF (Typst).

HTML: one file, the figures embedded as PNG data URIs, no script, no font or style from
the network; printable at A4. PDF: Typst markup compiled by the ``typst`` wheel, which
brings its own fonts (Libertinus Serif) and needs neither LaTeX, nor a system library,
nor the network; ``date: none`` keeps the file byte-identical across runs.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from jinja2 import Environment

from impact.brief.build import Brief

__all__ = ["render_html", "render_typst", "compile_pdf", "typst_escape"]

_HTML = """<!DOCTYPE html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
  @page { size: A4; margin: 18mm 16mm; }
  body { font-family: Georgia, "Libertinus Serif", "Times New Roman", serif; color: #222;
         max-width: 178mm; margin: 0 auto; padding: 12px 16px 40px; line-height: 1.45;
         font-size: 11pt; }
  h1 { font-size: 20pt; margin: 0.4em 0 0.1em; color: #1f4e79; }
  .subtitle { font-size: 12pt; color: #555; margin: 0 0 1.2em; }
  h2 { font-size: 13.5pt; margin: 1.3em 0 0.35em; color: #1f4e79;
       border-bottom: 1px solid #d0d7de; padding-bottom: 2px; }
  p, li { max-width: 100%; }
  ul { padding-left: 1.3em; }
  figure { margin: 0.9em 0; break-inside: avoid; page-break-inside: avoid; }
  figure img { width: 100%; height: auto; display: block; }
  figcaption { font-size: 9.5pt; color: #555; font-style: italic; margin-top: 0.2em; }
  .source { font-size: 9.5pt; color: #555; border-top: 1px solid #d0d7de; margin-top: 2em;
            padding-top: 0.4em; }
  nav { font-size: 9.5pt; }
</style>
</head>
<body>
<nav><a href="{{ index }}">{{ back }}</a> · {{ other|safe }}</nav>
<h1>{{ title }}</h1>
<p class="subtitle">{{ subtitle }}</p>
{% for kind, value in blocks -%}
{% if kind == "h" %}<h2>{{ value }}</h2>
{% elif kind == "p" %}<p>{{ value }}</p>
{% elif kind == "ul" %}<ul>{% for item in value %}<li>{{ item }}</li>{% endfor %}</ul>
{% elif kind == "fig" %}<figure><img src="data:image/png;base64,{{ images[value[0]] }}" alt="{{ value[1] }}"><figcaption>{{ value[1] }}</figcaption></figure>
{% elif kind == "source" %}<p class="source">{{ value }}</p>
{% endif -%}
{% endfor %}
</body>
</html>
"""

_ENV = Environment(autoescape=True, keep_trailing_newline=True)


def render_html(brief: Brief, figures: Path, index_href: str, other_links: str) -> str:
    """The brief as one self-contained HTML page (figures inlined)."""
    images = {stem: base64.b64encode((figures / f"{stem}.png").read_bytes()).decode("ascii")
              for kind, value in brief.blocks if kind == "fig" for stem in [value[0]]}
    back = "Alle uitkomsten" if brief.lang == "nl" else "All outputs"
    return _ENV.from_string(_HTML).render(
        lang=brief.lang, title=brief.title, subtitle=brief.subtitle, blocks=brief.blocks,
        images=images, index=index_href, back=back, other=other_links)


_SPECIAL = re.compile(r"([\\#$*_`<>@\[\]/~=+\-])")


def typst_escape(text: str) -> str:
    """Text as literal Typst markup (every markup character escaped)."""
    return _SPECIAL.sub(r"\\\1", text)


def render_typst(brief: Brief, figure_prefix: str = "figures/") -> str:
    """The brief as Typst markup; figures are read from ``<root>/<figure_prefix><stem>.png``."""
    e = typst_escape
    page = "Pagina" if brief.lang == "nl" else "Page"
    out = [
        f'#set document(title: "{brief.title.replace(chr(34), "")}", date: none)',
        '#set page(paper: "a4", margin: (x: 18mm, y: 17mm), '
        f'footer: context align(right, text(size: 8.5pt, fill: rgb("#666"))[{e(brief.title)} · '
        f'{page} #counter(page).display()]))',
        f'#set text(font: "Libertinus Serif", size: 10.5pt, lang: "{brief.lang}")',
        "#set smartquote(enabled: false)",
        "#set par(leading: 0.62em, spacing: 0.9em)",
        '#show heading.where(level: 2): it => block(above: 1.1em, below: 0.5em, '
        'text(size: 12.5pt, fill: rgb("#1f4e79"), weight: "bold", it.body))',
        f'#text(size: 19pt, fill: rgb("#1f4e79"), weight: "bold")[{e(brief.title)}]',
        "",
        f'#text(size: 11.5pt, fill: rgb("#555"))[{e(brief.subtitle)}]',
        "",
    ]
    for kind, value in brief.blocks:
        if kind == "h":
            out += [f"== {e(value)}", ""]
        elif kind == "p":
            out += [e(value), ""]
        elif kind == "ul":
            out += [f"- {e(item)}" for item in value] + [""]
        elif kind == "fig":
            stem, caption = value
            out += [f'#block(breakable: false, width: 100%)[#align(center, image('
                    f'"{figure_prefix}{stem}.png", width: 84%))\n#text(size: 9pt, fill: '
                    f'rgb("#555"), style: "italic")[{e(caption)}]]', ""]
        elif kind == "source":
            out += ['#line(length: 100%, stroke: 0.5pt + rgb("#ccc"))',
                    f'#text(size: 9pt, fill: rgb("#555"))[{e(value)}]', ""]
    return "\n".join(out)


def compile_pdf(source: str, root: Path, name: str) -> bytes:
    """Compile Typst ``source`` with ``root`` as its file root (figures are read from there)."""
    import typst

    path = root / f".{name}.typ"
    path.write_text(source, encoding="utf-8")
    try:
        return typst.compile(str(path), root=str(root))
    finally:
        path.unlink()


def visible_text(page: str) -> str:
    """The words a reader sees in an HTML brief (for tests): no tags, images or styles."""
    page = re.sub(r"<style.*?</style>|<script.*?</script>", " ", page, flags=re.S)
    page = re.sub(r'alt="[^"]*"', " ", page)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))
