"""filelist: PMC's .filelist.csv rows to versions and retractions; every bad row is named by its line."""

from __future__ import annotations

from datetime import datetime, timezone

from adabiobert.pmc.filelist import BadRow, Listed, file_list_uri, parse_file_list

HEADER = "Article File,Article Citation,AccessionID,LastUpdated (YYYY-MM-DD HH:MM:SS),PMID,License,Retracted\n"


def test_rows_give_version_and_retraction_by_member_path():
    data = (HEADER + 'PMC006xxxxxx/PMC6908519.xml,"Sci Rep. 2019; 9:1",PMC6908519,2022-12-20 11:28:35,31836777,CC BY,no\n'
            "PMC006xxxxxx/PMC6908520.xml,x,PMC6908520,2023-01-01 00:00:00,,CC BY-NC,yes\n").encode()
    listed, bad = parse_file_list(b"\xef\xbb\xbf" + data)  # a byte-order mark is allowed
    assert bad == []
    assert listed == {
        "PMC006xxxxxx/PMC6908519.xml": Listed(2, "PMC6908519", datetime(2022, 12, 20, 11, 28, 35, tzinfo=timezone.utc), False),
        "PMC006xxxxxx/PMC6908520.xml": Listed(3, "PMC6908520", datetime(2023, 1, 1, tzinfo=timezone.utc), True),
    }


def test_each_bad_row_is_named_by_line_and_the_good_rows_stay():
    rows = ["a.xml,c,PMC1,2020-01-01 00:00:00,1,CC BY,no",
            "a.xml,c,PMC1,2021-01-01 00:00:00,1,CC BY,no",   # repeated member
            ",c,PMC2,2020-01-01 00:00:00,1,CC BY,no",         # no member
            "b.xml,c,1234,2020-01-01 00:00:00,1,CC BY,no",    # not a PMC id
            "c.xml,c,PMC3,2020-01-01,1,CC BY,no",             # no time of day
            "d.xml,c,PMC4,2020-01-01 00:00:00,1,CC BY,maybe"]
    listed, bad = parse_file_list((HEADER + "\n".join(rows) + "\n").encode())
    assert list(listed) == ["a.xml"] and listed["a.xml"].line == 2
    assert [row.line for row in bad] == [3, 4, 5, 6, 7]
    assert "listed again (first at line 2)" in bad[0].reason
    assert "empty Article File" in bad[1].reason
    assert "AccessionID '1234'" in bad[2].reason
    assert "LastUpdated '2020-01-01'" in bad[3].reason
    assert "Retracted 'maybe'" in bad[4].reason


def test_a_header_without_a_needed_column_makes_the_whole_list_bad():
    listed, bad = parse_file_list(b"Article File,AccessionID\na.xml,PMC1\n")
    assert listed == {} and bad == [BadRow(0, bad[0].reason)]
    assert "'LastUpdated (YYYY-MM-DD HH:MM:SS)'" in bad[0].reason


def test_the_file_list_lies_beside_its_package():
    assert file_list_uri("s3://b/oa_comm_xml.incr.2024-06-19.tar.gz") == "s3://b/oa_comm_xml.incr.2024-06-19.filelist.csv"
    assert file_list_uri("/x/p.tgz") == "/x/p.filelist.csv"
