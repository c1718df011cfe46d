"""storage: the same calls on local folders and on a loopback S3 server (moto)."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from adabiobert import storage


def test_is_s3_and_join():
    assert storage.is_s3("s3://bucket/key") and not storage.is_s3("/tmp/x")
    assert storage.join("s3://bucket/shards/", "part-00000.parquet") == "s3://bucket/shards/part-00000.parquet"
    assert storage.join("s3://bucket", "a", "b.txt") == "s3://bucket/a/b.txt"
    assert storage.join("/tmp/out", "a", "b.txt") == os.path.join("/tmp/out", "a", "b.txt")


def test_local_write_is_atomic_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "deep" / "file.bin"
    storage.write_bytes(str(target), b"first")
    storage.write_bytes(str(target), b"second")
    assert storage.read_bytes(str(target)) == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_local_list_files_filters_suffixes_sorts_and_versions_by_mtime(tmp_path):
    for name in ("b.nxml", "a.nxml", "sub/c.nxml", "notes.txt"):
        storage.write_bytes(str(tmp_path / name), b"x" * 3)
    found = storage.list_files(str(tmp_path), (".nxml",))
    assert [os.path.relpath(f.uri, tmp_path) for f in found] == ["a.nxml", "b.nxml", os.path.join("sub", "c.nxml")]
    assert found[0].size == 3
    assert found[0].version == str(os.stat(found[0].uri).st_mtime_ns)
    assert storage.list_files(str(tmp_path / "missing")) == []


def test_local_exists_and_missing_read(tmp_path):
    assert storage.exists(str(tmp_path)) and not storage.exists(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(str(tmp_path / "nope"))


def test_s3_round_trip_exists_and_missing(s3_bucket):
    uri = f"s3://{s3_bucket}/dir/hello.txt"
    assert not storage.exists(uri)
    storage.write_bytes(uri, "héllo".encode())
    assert storage.exists(uri)
    assert storage.read_bytes(uri).decode() == "héllo"
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(f"s3://{s3_bucket}/dir/missing.txt")


def test_s3_list_files_uses_the_prefix_as_a_folder_and_etag_as_version(s3_bucket):
    storage.write_bytes(f"s3://{s3_bucket}/shards/part-00000.parquet", b"one")
    storage.write_bytes(f"s3://{s3_bucket}/shards/stats.json", b"{}")
    storage.write_bytes(f"s3://{s3_bucket}/shards-old/part-00000.parquet", b"old")
    found = storage.list_files(f"s3://{s3_bucket}/shards", (".parquet",))
    assert [f.uri for f in found] == [f"s3://{s3_bucket}/shards/part-00000.parquet"]
    assert found[0].size == 3
    before = found[0].version
    storage.write_bytes(found[0].uri, b"changed")
    assert storage.list_files(f"s3://{s3_bucket}/shards", (".parquet",))[0].version != before


def test_filesystem_for_s3_reads_parquet_through_the_endpoint(s3_bucket):
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"x": [1, 2, 3]}), sink)
    uri = f"s3://{s3_bucket}/t/table.parquet"
    storage.write_bytes(uri, sink.getvalue().to_pybytes())
    filesystem, path = storage.filesystem_for(uri)
    assert isinstance(filesystem, pafs.S3FileSystem)
    assert path == f"{s3_bucket}/t/table.parquet"
    assert pq.read_table(path, filesystem=filesystem).column("x").to_pylist() == [1, 2, 3]


def test_filesystem_for_local_gives_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    filesystem, path = storage.filesystem_for("shards/part-00000.parquet")
    assert isinstance(filesystem, pafs.LocalFileSystem)
    assert path == str(tmp_path / "shards" / "part-00000.parquet")


def test_upload_and_download_dir_keep_the_layout(tmp_path, s3_bucket):
    source = tmp_path / "source"
    storage.write_bytes(str(source / "vectors.kv"), b"kv")
    storage.write_bytes(str(source / "nested" / "stats.json"), b"{}")
    storage.upload_dir(source, f"s3://{s3_bucket}/run")
    assert storage.read_bytes(f"s3://{s3_bucket}/run/nested/stats.json") == b"{}"
    back = tmp_path / "back"
    storage.download_dir(f"s3://{s3_bucket}/run", back)
    assert (back / "vectors.kv").read_bytes() == b"kv"
    assert (back / "nested" / "stats.json").read_bytes() == b"{}"


def test_upload_dir_to_a_local_folder(tmp_path):
    storage.write_bytes(str(tmp_path / "a" / "x" / "f.txt"), b"1")
    storage.upload_dir(tmp_path / "a", str(tmp_path / "b"))
    assert (tmp_path / "b" / "x" / "f.txt").read_bytes() == b"1"


def bundle_folder(root, marker: str = "new") -> str:
    """A small folder shaped like a bundle: a manifest, weights and a nested tokenizer file."""
    for relative in ("adabiobert.json", "model.safetensors", "tokenizer/vocab.txt"):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{marker} {relative}")
    return str(root)


def copies_then_fails(monkeypatch, after: int):
    """Make storage's local file copy fail after ``after`` successful copies (a crash mid-publish)."""
    real, calls = storage.shutil.copyfile, []

    def copy(source, target):
        calls.append(target)
        if len(calls) > after:
            raise OSError("disk full")
        return real(source, target)

    monkeypatch.setattr(storage.shutil, "copyfile", copy)


def test_publish_dir_puts_the_whole_folder_in_place_and_replaces_an_old_one(tmp_path):
    target = tmp_path / "run" / "model"
    bundle_folder(target, "old")
    (target / "stale.bin").write_text("from the old bundle")
    storage.publish_dir(bundle_folder(tmp_path / "scratch"), str(target), last="adabiobert.json")
    published = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert published == ["adabiobert.json", "model.safetensors", "tokenizer/vocab.txt"]
    assert (target / "tokenizer" / "vocab.txt").read_text() == "new tokenizer/vocab.txt"
    assert os.listdir(tmp_path / "run") == ["model"]  # no staging or set-aside folder left


def test_publish_dir_failing_midway_leaves_no_model_folder(tmp_path, monkeypatch):
    copies_then_fails(monkeypatch, after=1)
    with pytest.raises(OSError, match="disk full"):
        storage.publish_dir(bundle_folder(tmp_path / "scratch"), str(tmp_path / "run" / "model"), last="adabiobert.json")
    assert os.listdir(tmp_path / "run") == []


def test_publish_dir_failing_midway_keeps_the_previous_folder_intact(tmp_path, monkeypatch):
    target = tmp_path / "run" / "model"
    bundle_folder(target, "old")
    copies_then_fails(monkeypatch, after=2)
    with pytest.raises(OSError, match="disk full"):
        storage.publish_dir(bundle_folder(tmp_path / "scratch"), str(target), last="adabiobert.json")
    assert os.listdir(tmp_path / "run") == ["model"]
    assert all(p.read_text().startswith("old ") for p in target.rglob("*") if p.is_file())


def test_publish_dir_refuses_a_folder_without_its_completion_file(tmp_path):
    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch" / "model.safetensors").write_text("weights")
    with pytest.raises(FileNotFoundError, match="adabiobert.json is missing"):
        storage.publish_dir(str(tmp_path / "scratch"), str(tmp_path / "run" / "model"), last="adabiobert.json")
    assert not (tmp_path / "run").exists()


def test_publish_dir_to_s3_moves_the_completion_file_last(tmp_path, s3_bucket, monkeypatch):
    target = f"s3://{s3_bucket}/run/model"
    storage.upload_dir(bundle_folder(tmp_path / "old"), target)
    moved = []
    real_move = storage.move

    def move(source, destination):
        moved.append(destination)
        if len(moved) == 2:
            raise OSError("connection reset")  # a crash in the middle of the moves
        return real_move(source, destination)

    monkeypatch.setattr(storage, "move", move)
    with pytest.raises(OSError):
        storage.publish_dir(bundle_folder(tmp_path / "scratch"), target, last="adabiobert.json")
    assert not storage.exists(f"{target}/adabiobert.json")  # neither the old nor a partial bundle looks complete

    monkeypatch.setattr(storage, "move", real_move)
    storage.publish_dir(bundle_folder(tmp_path / "scratch"), target, last="adabiobert.json")
    published = [info.uri[len(target) + 1:] for info in storage.list_files(target)]
    assert published == ["adabiobert.json", "model.safetensors", "tokenizer/vocab.txt"]
    assert storage.read_bytes(f"{target}/model.safetensors") == b"new model.safetensors"


# ---- one file, local copies, staged outputs: the s3/local choices other modules leave to storage ----
@pytest.mark.parametrize("where", ["local", "s3"])
def test_stat_gives_a_file_as_listing_does_and_none_for_a_folder_or_nothing(where, tmp_path, request):
    root = str(tmp_path) if where == "local" else f"s3://{request.getfixturevalue('s3_bucket')}/root"
    storage.write_bytes(storage.join(root, "sub", "a.parquet"), b"abc")
    (listed,) = storage.list_files(root)
    assert storage.stat(storage.join(root, "sub", "a.parquet")) == listed and listed.size == 3
    assert storage.stat(storage.join(root, "sub")) is None
    assert storage.stat(storage.join(root, "sub", "b.parquet")) is None


def test_relative_to_names_a_listed_file_below_its_folder(tmp_path, monkeypatch):
    assert storage.relative_to("s3://b/out/_manifest/x.json", "s3://b/out/") == "_manifest/x.json"
    monkeypatch.chdir(tmp_path)
    storage.write_bytes(str(tmp_path / "out" / "a" / "b.json"), b"{}")
    (found,) = storage.list_files("out")
    assert storage.relative_to(found.uri, "out") == storage.relative_to(str(tmp_path / "out" / "a" / "b.json"),
                                                                        str(tmp_path / "out")) == "a/b.json"


def test_a_local_folder_is_its_own_copy_and_outlives_cleanup(tmp_path):
    storage.write_bytes(str(tmp_path / "model" / "weights"), b"w")
    with storage.local_folder(str(tmp_path / "model")) as copy:
        assert copy.path == str(tmp_path / "model")
    assert (tmp_path / "model" / "weights").read_bytes() == b"w"


def test_an_s3_folder_is_downloaded_under_its_name_only_what_is_asked_and_deleted_after(tmp_path, s3_bucket):
    for name in ("adabiobert.json", "model.safetensors", "tokenizer/vocab.txt"):
        storage.write_bytes(f"s3://{s3_bucket}/runs/x/model/{name}", name.encode())
    with storage.local_folder(f"s3://{s3_bucket}/runs/x/model", only=("adabiobert.json", "tokenizer")) as copy:
        folder = copy.path
        assert os.path.basename(folder) == "model"
        assert sorted(os.path.relpath(f.uri, folder) for f in storage.list_files(folder)) == [
            "adabiobert.json", os.path.join("tokenizer", "vocab.txt")]
    assert not os.path.exists(folder)
    assert storage.parent_name(f"s3://{s3_bucket}/runs/x/model/") == "x" == storage.parent_name(str(tmp_path / "x" / "m"))


def test_a_missing_file_has_no_local_copy(tmp_path, s3_bucket):
    for uri in (str(tmp_path / "nope.kv"), f"s3://{s3_bucket}/nope.kv"):
        with pytest.raises(FileNotFoundError):
            storage.local_file(uri)


def test_a_staged_output_reaches_s3_only_when_the_block_ends_well(s3_bucket):
    with storage.staged_output(f"s3://{s3_bucket}/good") as folder:
        storage.write_bytes(os.path.join(folder, "a", "stats.json"), b"{}")
        assert storage.list_files(f"s3://{s3_bucket}/good") == []  # nothing until the end
    assert storage.read_bytes(f"s3://{s3_bucket}/good/a/stats.json") == b"{}"
    with pytest.raises(RuntimeError), storage.staged_output(f"s3://{s3_bucket}/bad") as folder:
        storage.write_bytes(os.path.join(folder, "half.json"), b"{")
        raise RuntimeError("the build failed")
    assert storage.list_files(f"s3://{s3_bucket}/bad") == []


def test_a_local_staged_output_is_the_folder_itself(tmp_path):
    with storage.staged_output(str(tmp_path / "out")) as folder:
        assert folder == str(tmp_path / "out") and os.path.isdir(folder)


def test_open_output_creates_local_folders_and_writes_to_s3(tmp_path, s3_bucket):
    for uri in (str(tmp_path / "deep" / "t.parquet"), f"s3://{s3_bucket}/deep/t.parquet"):
        with storage.open_output(uri) as sink:
            pq.write_table(pa.table({"x": [1, 2]}), sink)
        filesystem, path = storage.filesystem_for(uri)
        assert pq.read_table(path, filesystem=filesystem).column("x").to_pylist() == [1, 2]


# --- unsigned requests: PMC's public bucket read by a user without AWS credentials -------------
@pytest.mark.parametrize("value, unsigned", [("YES", True), ("true", True), ("1", True), ("NO", False), ("off", False)])
def test_aws_no_sign_request_decides_when_set(monkeypatch, value, unsigned):
    monkeypatch.setenv("AWS_NO_SIGN_REQUEST", value)
    assert storage.s3_unsigned() is unsigned


def test_an_unknown_aws_no_sign_request_value_is_refused(monkeypatch):
    monkeypatch.setenv("AWS_NO_SIGN_REQUEST", "maybe")
    with pytest.raises(ValueError, match="AWS_NO_SIGN_REQUEST='maybe'"):
        storage.s3_unsigned()


def test_with_the_loopback_credentials_requests_are_signed(s3_server, monkeypatch):
    from botocore import UNSIGNED

    monkeypatch.delenv("AWS_NO_SIGN_REQUEST", raising=False)
    assert not storage.s3_unsigned()
    assert storage.boto3_client().meta.config.signature_version is not UNSIGNED


def test_without_credentials_a_public_bucket_is_read_unsigned(s3_bucket, anonymous_s3):
    from botocore import UNSIGNED

    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"x": [1, 2]}), sink)
    with anonymous_s3.signed():
        storage.write_bytes(f"s3://{s3_bucket}/PMC1.1/PMC1.1.xml", b"<article/>")
        storage.write_bytes(f"s3://{s3_bucket}/t.parquet", sink.getvalue().to_pybytes())
    assert storage.s3_unsigned() and storage.boto3_client().meta.config.signature_version is UNSIGNED
    with pytest.raises(Exception, match="403|Forbidden|AccessDenied"):  # private until the policy says otherwise
        storage.read_bytes(f"s3://{s3_bucket}/PMC1.1/PMC1.1.xml")
    anonymous_s3.make_public(s3_bucket)
    assert storage.read_bytes(f"s3://{s3_bucket}/PMC1.1/PMC1.1.xml") == b"<article/>"
    assert [f.uri for f in storage.list_files(f"s3://{s3_bucket}/PMC1.1")] == [f"s3://{s3_bucket}/PMC1.1/PMC1.1.xml"]
    assert storage.stat(f"s3://{s3_bucket}/PMC1.1/PMC1.1.xml").size == len(b"<article/>")
    filesystem, path = storage.filesystem_for(f"s3://{s3_bucket}/t.parquet")
    assert pq.read_table(path, filesystem=filesystem).column("x").to_pylist() == [1, 2]


def test_pmcs_public_bucket_is_read_unsigned_even_with_credentials(monkeypatch):
    """A pod's IAM role may not grant another account's public bucket; unsigned reads need nothing."""
    from botocore import UNSIGNED

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "mine")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "mine")
    monkeypatch.delenv("AWS_NO_SIGN_REQUEST", raising=False)
    monkeypatch.delenv(storage.PUBLIC_BUCKETS_ENV, raising=False)
    assert storage.boto3_client("pmc-oa-opendata").meta.config.signature_version is UNSIGNED
    assert storage.boto3_client("my-bucket").meta.config.signature_version is not UNSIGNED
    assert storage.filesystem_for("s3://pmc-oa-opendata/metadata/PMC1.1.json")[0] is not None
    monkeypatch.setenv(storage.PUBLIC_BUCKETS_ENV, "")
    assert storage.boto3_client("pmc-oa-opendata").meta.config.signature_version is not UNSIGNED
