"""jats: PMC articles to records; what markup, floats and formulas become; bad files fail clearly."""

from __future__ import annotations

import io
import tarfile
from datetime import datetime, timezone

import pytest

from adabiobert.pmc.jats import JatsError, iter_package_members, parse_jats
from adabiobert.pmc.shards import PMC_SHARD_SCHEMA, records_to_table


def _article(body: str = "", meta: str = "", front_extra: str = "") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE article PUBLIC "-//NLM//DTD JATS (Z39.96) Journal Archiving and Interchange DTD v1.0 20120330//EN" "JATS-archivearticle1.dtd">
<article xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:mml="http://www.w3.org/1998/Math/MathML">
<front><article-meta>
<article-id pub-id-type="pmid">111</article-id>
<article-id pub-id-type="pmc">222</article-id>
<article-id pub-id-type="doi">10.1/x</article-id>
{meta}
</article-meta>{front_extra}</front>
<body>{body}</body>
</article>""".encode()


def test_sample_article_ids_title_abstract_sections_and_licence(shared_root):
    path = shared_root / "pmc-sample" / "pone.0000217.nxml"
    record = parse_jats(path.read_bytes(), str(path))
    assert (record["pmcid"], record["pmid"], record["doi"]) == ("PMC1790863", "17299597", "10.1371/journal.pone.0000217")
    assert record["title"] == "Quantifying Organismal Complexity using a Population Genetic Approach"
    assert record["abstract"].startswith("Various definitions of biological complexity have been proposed")
    titles = [s["title"] for s in record["sections"]]
    assert titles[:3] == ["Introduction", "Model and Results", "Model and Results / Linear Fitness Decline"]
    assert any(t.startswith("Methods / Appendix B: robustness to assumptions / ") for t in titles)
    assert record["last_updated"] == datetime(2007, 2, 14, tzinfo=timezone.utc)
    assert record["source"] == str(path)
    records_to_table([record])  # fits the shard schema


def test_every_sample_article_fits_the_schema(shared_root):
    records = [parse_jats(p.read_bytes(), str(p)) for p in sorted((shared_root / "pmc-sample").glob("*.nxml"))]
    table = records_to_table(records)
    assert table.num_rows == 8 and table.schema.equals(PMC_SHARD_SCHEMA)
    assert all(r["sections"] and r["abstract"] for r in records)


def test_licence_text_or_href(shared_root):
    plos = parse_jats((shared_root / "pmc-sample" / "pone.0046493.nxml").read_bytes(), "x")
    assert plos["license"].startswith("This is an open-access article distributed under the terms")
    bmc = parse_jats((shared_root / "pmc-sample" / "1472-6831-8-11.nxml").read_bytes(), "x")
    assert "(http://creativecommons.org/licenses/by/2.0)" in bmc["license"]  # empty <ext-link> -> its address


def test_non_ascii_text_is_kept(shared_root):
    record = parse_jats((shared_root / "pmc-sample" / "pntd.0002065.nxml").read_bytes(), "x")
    assert "Zambézia" in record["title"]
    synthetic = parse_jats(_article("<p>Müller cells express β-catenin – 中文 text.</p>"), "x")
    assert synthetic["sections"][0]["text"] == "Müller cells express β-catenin – 中文 text."


def test_nested_sections_are_flattened_in_reading_order():
    body = """<p>Lead paragraph.</p>
    <sec><title>Methods</title><p>Intro to methods.</p>
      <sec><title>Cell <italic>culture</italic></title><p>Cells were grown.</p>
        <sec><title>Media</title><p>DMEM.</p></sec></sec>
      <p>After the subsections.</p>
      <sec><p>Untitled subsection.</p></sec>
    </sec>"""
    sections = parse_jats(_article(body), "x")["sections"]
    assert [(s["title"], s["text"]) for s in sections] == [
        ("", "Lead paragraph."),
        ("Methods", "Intro to methods."),
        ("Methods / Cell culture", "Cells were grown."),
        ("Methods / Cell culture / Media", "DMEM."),
        ("Methods", "After the subsections."),
        ("Methods", "Untitled subsection."),
    ]


def test_inline_markup_is_dropped_and_its_text_kept():
    body = ('<sec><title>R</title><p>The <italic>BRCA1</italic> gene<sup>2</sup> is <bold>mutated</bold> '
            '[<xref ref-type="bibr" rid="b12">12</xref>]\n   in   <named-content>tumours</named-content>.</p>'
            '<p>Second paragraph.</p></sec>')
    text = parse_jats(_article(body), "x")["sections"][0]["text"]
    assert text == "The BRCA1 gene2 is mutated [12] in tumours.\n\nSecond paragraph."


def test_formulas_display_dropped_inline_kept():
    body = ('<p>The energy is<disp-formula><tex-math>E=mc^2</tex-math><graphic xlink:href="e1.jpg"/></disp-formula>'
            'where <inline-formula><mml:math><mml:mi>x</mml:mi><mml:mo>=</mml:mo><mml:mn>2</mml:mn></mml:math>'
            '</inline-formula> holds.</p>')
    text = parse_jats(_article(body), "x")["sections"][0]["text"]
    assert text == "The energy is where x=2 holds."


def test_tables_keep_captions_and_drop_cells_figures_follow_their_paragraph():
    body = """<p>See the table.<table-wrap id="t1"><label>Table 1</label>
        <caption><title>Patient characteristics</title><p>Values are means.</p></caption>
        <table><tr><td>CELLVALUE</td></tr></table>
        <table-wrap-foot><fn><p>FOOTNOTE</p></fn></table-wrap-foot></table-wrap> And more text.</p>
      <fig id="f1"><label>Figure 1</label><caption><p>Growth curves.</p></caption><graphic xlink:href="f1.jpg"/></fig>"""
    text = parse_jats(_article(body), "x")["sections"][0]["text"]
    assert text.split("\n\n") == ["See the table. And more text.", "Patient characteristics", "Values are means.",
                                  "Growth curves."]
    assert "CELLVALUE" not in text and "FOOTNOTE" not in text and "Table 1" not in text


def test_a_list_inside_a_paragraph_splits_it_in_order():
    body = "<p>Criteria were:<list><list-item><p>age over 18;</p></list-item><list-item><p>consent.</p></list-item></list>Then we started.</p>"
    text = parse_jats(_article(body), "x")["sections"][0]["text"]
    assert text.split("\n\n") == ["Criteria were:", "age over 18;", "consent.", "Then we started."]


def test_structured_abstracts_keep_paragraphs_not_headings():
    meta = ("<abstract><sec><title>Background</title><p>First.</p></sec><sec><title>Methods</title><p>Second.</p></sec>"
            '</abstract><abstract abstract-type="summary"><title>Author Summary</title><p>Third.</p></abstract>')
    assert parse_jats(_article(meta=meta), "x")["abstract"] == "First.\n\nSecond.\n\nThird."


def test_an_empty_article_gives_a_record_with_empty_text():
    record = parse_jats(b'<article><front><article-meta><article-id pub-id-type="pmc">PMC9</article-id>'
                        b'</article-meta></front></article>', "empty.nxml")
    assert record["pmcid"] == "PMC9"
    assert (record["title"], record["abstract"], record["sections"], record["license"]) == ("", "", [], None)
    assert record["pmid"] is None and record["last_updated"] is None
    records_to_table([record])


def test_last_updated_is_the_latest_article_date_else_the_file_time():
    meta = ('<pub-date pub-type="epub"><day>14</day><month>2</month><year>2007</year></pub-date>'
            '<history><date date-type="accepted"><month>13</month><year>2008</year></date></history>'
            '<pub-date pub-type="collection"><year>2007</year></pub-date>'
            '<pub-date pub-type="ppub"><year>0</year></pub-date><pub-date pub-type="x"><year>n.d.</year></pub-date>')
    assert parse_jats(_article(meta=meta), "x")["last_updated"] == datetime(2008, 1, 1, tzinfo=timezone.utc)
    modified = datetime(2024, 5, 6, 7, 8, tzinfo=timezone.utc)
    assert parse_jats(_article(), "x", modified=modified)["last_updated"] == modified


def test_a_large_article_parses():
    paragraph = "<p>" + "The TP53 protein binds DNA in cancer cells. " * 40 + "</p>"
    body = "".join(f"<sec><title>S{i}</title>{paragraph * 3}</sec>" for i in range(200))  # about 1 MB
    data = _article(body)
    assert len(data) > 1_000_000
    record = parse_jats(data, "big.nxml")
    assert len(record["sections"]) == 200
    assert sum(len(s["text"]) for s in record["sections"]) > 900_000


def test_malformed_xml_names_the_file_and_line():
    with pytest.raises(JatsError, match=r"^bad\.nxml:3: XML syntax error") as caught:
        parse_jats(b'<article>\n<front>\n<article-meta></front>\n</article>', "bad.nxml")
    assert caught.value.line == 3 and caught.value.path == "bad.nxml"


def test_a_pubmed_record_is_not_a_jats_article(shared_root):
    path = shared_root / "pmc-sample" / "pubmed-29768149.xml"
    with pytest.raises(JatsError, match="root element is <PubmedArticleSet>, not <article>"):
        parse_jats(path.read_bytes(), str(path))


def test_an_article_without_pmc_id_is_refused():
    with pytest.raises(JatsError, match="PMC id is required"):
        parse_jats(b"<article><front><article-meta><article-id pub-id-type='doi'>10.1/x</article-id>"
                   b"</article-meta></front></article>", "x")


def test_no_entity_or_network_access():
    data = (b'<?xml version="1.0"?><!DOCTYPE article [<!ENTITY secret SYSTEM "file:///etc/hostname">]>'
            b'<article><front><article-meta><article-id pub-id-type="pmc">1</article-id>'
            b'<title-group><article-title>A &secret; B</article-title></title-group></article-meta></front></article>')
    assert parse_jats(data, "x")["title"] == "A B"


def _package(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as package:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            package.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_package_members_are_streamed_nxml_only():
    data = _package({"PMC1/a.nxml": _article(), "PMC1/a.pdf": b"%PDF", "PMC1/b.nxml": b"<article>"})
    members = list(iter_package_members(io.BytesIO(data), "s3://b/pkg.tar.gz"))
    assert [m[0] for m in members] == ["s3://b/pkg.tar.gz::PMC1/a.nxml", "s3://b/pkg.tar.gz::PMC1/b.nxml"]
    assert members[0][2] == datetime.fromtimestamp(1_700_000_000, tz=timezone.utc)
    assert parse_jats(members[0][1], members[0][0])["pmcid"] == "PMC222"
