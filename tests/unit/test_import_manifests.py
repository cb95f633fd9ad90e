"""What a bulk import reads from a manifest: a CSV of keys, or an S3 Inventory CSV."""

import pytest

from chalicelib.errors import ApiError
from chalicelib.services.import_runs import INVENTORY_COLUMNS, Entry, manifest_entries, partitions_of


def entries(text: str, manifest_format: str = "keys", columns: str = INVENTORY_COLUMNS) -> list[Entry]:
    return list(
        manifest_entries(text.splitlines(keepends=True), manifest_format=manifest_format, columns=columns, bucket="b")
    )


def test_a_csv_of_keys_names_objects_in_pixelakes_bucket_and_skips_its_header_and_blank_lines():
    text = 'key\nuploads/1/a.png\n\n"uploads/1/with, comma.png",ignored column\n  uploads/1/spaced.png  \n'
    assert entries(text) == [
        Entry("b", "uploads/1/a.png"),
        Entry("b", "uploads/1/with, comma.png"),
        Entry("b", "uploads/1/spaced.png"),
    ]


def test_an_s3_inventory_has_no_header_url_encoded_keys_and_the_columns_of_its_file_schema():
    text = '"src","uploads/1/my+photo%2B1.jpg","1234","2026-12-01T00:00:00.000Z","abc"\n'
    assert entries(text, "inventory") == [Entry("src", "uploads/1/my photo+1.jpg", 1234, "abc")]
    # Another schema: the columns are found by name, Size and ETag are optional.
    reordered = '"uploads/1/x.png","src","false"\n'
    assert entries(reordered, "inventory", "Key, Bucket, IsLatest") == [Entry("src", "uploads/1/x.png")]


def test_an_inventory_line_short_of_the_schemas_columns_says_which_line():
    with pytest.raises(ValueError, match="manifest line 2 has 2 columns"):
        entries('"b","uploads/1/a.png","1","d","e"\n"b","uploads/1/c.png"\n', "inventory")


def test_an_inventory_schema_without_bucket_and_key_is_a_400():
    with pytest.raises(ApiError) as refused:
        entries('"1"\n', "inventory", "Size, ETag")
    assert refused.value.status == 400 and "must name Bucket and Key" in refused.value.message


def test_partitions_are_of_the_given_size_and_the_last_holds_the_rest():
    assert [len(p) for p in partitions_of(iter(range(7)), 3)] == [3, 3, 1]
    assert list(partitions_of(iter([]), 3)) == []


def test_an_imports_files_are_taken_while_they_fit_in_the_quota():
    from chalicelib.services.quota import import_refusals

    refusals = import_refusals(900, 1_000, [60, 50, 40, 0])
    assert refusals[0] is None and refusals[2] is None and refusals[3] is None  # a smaller one after still fits
    assert refusals[1] == "over your storage quota of 1,000 bytes: this file is 50 bytes and 960 are used"
    assert import_refusals(10**15, 0, [10**15]) == [None]  # 0: unlimited
