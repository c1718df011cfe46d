"""Local paths and ``s3://bucket/key`` URIs behind one small API: the only module that knows S3.

Every other module names its inputs and outputs as URI strings and calls these functions, so a
job runs unchanged on a laptop folder or a bucket. Object listing and ETags come from boto3;
Parquet I/O goes through the ``pyarrow.fs`` filesystem that :func:`filesystem_for` returns.

S3 settings come from the standard places only: credentials from boto3's and the AWS SDK's
default chain (environment, ``~/.aws``, instance metadata), and the endpoint from the
``AWS_ENDPOINT_URL`` environment variable when it is set (a MinIO or moto server, for example;
``http://`` is allowed). Nothing here logs credentials or endpoints.

Public buckets (PMC's ``s3://pmc-oa-opendata``) are read with unsigned, anonymous requests, as
``aws s3 ls s3://pmc-oa-opendata --no-sign-request`` does (pmc.ncbi.nlm.nih.gov/tools/pmcaws):
requests go unsigned when the default chain finds no credentials at all, or when
``AWS_NO_SIGN_REQUEST`` says so (``YES``/``TRUE``/``ON``/``1``; the name and values GDAL's
``/vsis3/`` reads for the same purpose). ``AWS_NO_SIGN_REQUEST=NO`` keeps requests signed even
then (boto3 then fails with its own "Unable to locate credentials"). See :func:`s3_unsigned`.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pyarrow.fs as pafs

_S3_PREFIX = "s3://"


@dataclass(frozen=True)
class FileInfo:
    """One file found by :func:`list_files`.

    ``version`` changes whenever the content may have changed: the ETag for S3 (quotes removed),
    the modification time in nanoseconds for a local file.
    """

    uri: str
    size: int
    version: str


def is_s3(uri: str) -> bool:
    """True for ``s3://bucket/key`` URIs, False for local paths."""
    return str(uri).startswith(_S3_PREFIX)


def _split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``; the key may be empty."""
    bucket, _, key = uri[len(_S3_PREFIX):].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket; expected s3://bucket/key")
    return bucket, key


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL") or None


NO_SIGN_REQUEST_ENV = "AWS_NO_SIGN_REQUEST"
"""Set to ``YES`` to send every S3 request unsigned, credentials or not; ``NO`` to never do so."""

_TRUE = {"yes", "true", "on", "1"}
_FALSE = {"no", "false", "off", "0"}

_CREDENTIAL_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
                   "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_EC2_METADATA_DISABLED")
"""Settings of the default credential chain that name where credentials come from (not secrets)."""


PUBLIC_BUCKETS_ENV = "ADABIOBERT_PUBLIC_BUCKETS"
"""Buckets read with unsigned requests whatever the credentials (comma-separated); default
``pmc-oa-opendata``. A signed request to another account's public bucket is allowed only if the
signer's own IAM policy allows it too (a pod's role, say), while an unsigned one needs nothing.
Set it to an empty string to sign every request."""


def public_buckets() -> frozenset[str]:
    """The buckets of :data:`PUBLIC_BUCKETS_ENV` (PMC's Cloud Service bucket by default)."""
    value = os.environ.get(PUBLIC_BUCKETS_ENV, "pmc-oa-opendata")
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def s3_unsigned() -> bool:
    """True when S3 requests are sent unsigned (anonymous), as for a public bucket.

    ``AWS_NO_SIGN_REQUEST`` decides when it is set (``YES``/``TRUE``/``ON``/``1`` or
    ``NO``/``FALSE``/``OFF``/``0``, any case); otherwise requests go unsigned exactly when the
    default credential chain finds no credentials. The chain is asked once per distinct setting
    of the environment variables it reads (on a machine outside AWS its instance-metadata probe
    takes about a second), never per request.

    Raises:
        ValueError: ``AWS_NO_SIGN_REQUEST`` holds another value.
    """
    setting = os.environ.get(NO_SIGN_REQUEST_ENV, "").strip().lower()
    if setting in _TRUE:
        return True
    if setting in _FALSE:
        return False
    if setting:
        raise ValueError(f"{NO_SIGN_REQUEST_ENV}={os.environ[NO_SIGN_REQUEST_ENV]!r}: expected YES or NO")
    fingerprint = (("AWS_ACCESS_KEY_ID" in os.environ, "AWS_SECRET_ACCESS_KEY" in os.environ)
                   + tuple(os.environ.get(name) for name in _CREDENTIAL_ENV))
    return not _chain_has_credentials(fingerprint)


@functools.lru_cache(maxsize=8)
def _chain_has_credentials(fingerprint: tuple) -> bool:
    """Whether boto3's default chain finds credentials; cached per ``fingerprint`` of the
    environment (presence of the key variables, never their values)."""
    import botocore.session

    return botocore.session.get_session().get_credentials() is not None


def filesystem_for(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem that holds ``uri`` and the path of ``uri`` inside it.

    Args:
        uri: a local path or ``s3://bucket/key``.

    Returns:
        ``(LocalFileSystem, absolute path)`` or ``(S3FileSystem, "bucket/key")``. The S3
        filesystem uses ``AWS_ENDPOINT_URL`` (scheme included) when set, and the default
        credential chain; it pickles without credentials, so Ray workers resolve their own. It
        is anonymous when :func:`s3_unsigned` says so.
    """
    if not is_s3(uri):
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(str(uri)))
    bucket, key = _split_s3(uri)
    endpoint = _endpoint()
    options: dict[str, str] = {}
    if endpoint:
        parsed = urlparse(endpoint)
        options = {"endpoint_override": parsed.netloc or parsed.path, "scheme": parsed.scheme or "https"}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    anonymous = s3_unsigned() or bucket in public_buckets()
    return pafs.S3FileSystem(anonymous=anonymous, **options), f"{bucket}/{key}".rstrip("/")


def absolute(uri: str) -> str:
    """``uri`` as it names the same place from any working directory: an absolute local path
    (``~`` expanded), or the S3 URI unchanged."""
    return uri if is_s3(uri) else os.path.abspath(os.path.expanduser(str(uri)))


def basename(uri: str) -> str:
    """The last part of a path or URI (``s3://b/runs/x/model/`` -> ``model``)."""
    return PurePosixPath(str(uri).replace(os.sep, "/").rstrip("/")).name


def parent_name(uri: str) -> str:
    """The name of the folder holding ``uri`` (``runs/x/model`` -> ``x``); a local path is
    resolved first, so ``model`` named from inside ``runs/x`` gives ``x`` too."""
    if is_s3(uri):
        return PurePosixPath(uri.rstrip("/")).parent.name
    return Path(uri).resolve().parent.name


def join(uri: str, *parts: str) -> str:
    """Join path parts to a local path or an S3 URI (always with ``/`` for S3)."""
    if is_s3(uri):
        pieces = [uri.rstrip("/")] + [p.strip("/") for p in parts if p.strip("/")]
        return "/".join(pieces)
    return os.path.join(uri, *parts)


def read_bytes(uri: str) -> bytes:
    """The whole content of one file.

    Raises:
        FileNotFoundError: when the file or object does not exist.
    """
    if not is_s3(uri):
        return Path(uri).read_bytes()
    bucket, key = _split_s3(uri)
    client = boto3_client(bucket)
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey as error:
        raise FileNotFoundError(uri) from error


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri``, replacing what was there, atomically.

    A local file is written to a temporary file in the same folder and renamed over the
    target, so a reader never sees half a file; parent folders are created. An S3 PUT is
    atomic by itself.
    """
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        boto3_client().put_object(Bucket=bucket, Key=key, Body=data)
        return
    target = Path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    # os.open with 0o666 honours the umask, unlike tempfile's private 0o600 files.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def file_sha256(path: str | Path) -> str:
    """The hex sha256 of a local file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def exists(uri: str) -> bool:
    """True when ``uri`` is an existing file or folder (for S3: an object with that key)."""
    if not is_s3(uri):
        return os.path.exists(uri)
    bucket, key = _split_s3(uri)
    client = boto3_client(bucket)
    try:
        client.head_object(Bucket=bucket, Key=key)
    except client.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def stat(uri: str) -> FileInfo | None:
    """The file at ``uri`` (its size and version, as :func:`list_files` gives them), or None when
    there is none (nothing there, or a local folder). ``uri`` is made absolute (:func:`absolute`).

    One request for S3 (a HEAD), never a listing of the folder.
    """
    uri = absolute(uri)
    if not is_s3(uri):
        try:
            found = os.stat(uri)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return FileInfo(uri, found.st_size, str(found.st_mtime_ns)) if os.path.isfile(uri) else None
    bucket, key = _split_s3(uri)
    if not key or key.endswith("/"):
        return None
    client = boto3_client()
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except client.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return FileInfo(uri, int(head["ContentLength"]), head["ETag"].strip('"'))


def list_files(prefix_uri: str, suffixes: tuple[str, ...] = ()) -> list[FileInfo]:
    """Every file under a folder (recursively), sorted by URI.

    Args:
        prefix_uri: a local folder or an S3 "folder" (``s3://bucket/prefix``; ``prefix/`` is
            listed, so ``s3://b/shards`` does not pick up ``s3://b/shards-old/...``).
        suffixes: keep only names ending with one of these (for example ``(".parquet",)``);
            empty keeps all.

    Returns:
        The files, sorted by ``uri``; an empty list when the folder does not exist.
    """
    if is_s3(prefix_uri):
        found = _list_s3(prefix_uri)
    else:
        found = _list_local(prefix_uri)
    return sorted((f for f in found if not suffixes or f.uri.endswith(suffixes)), key=lambda f: f.uri)


def _list_s3(prefix_uri: str) -> list[FileInfo]:
    bucket, key = _split_s3(prefix_uri)
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    found = []
    for page in boto3_client(bucket).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/"):  # a "folder" marker object, not a file
                continue
            found.append(FileInfo(f"{_S3_PREFIX}{bucket}/{item['Key']}", int(item["Size"]), item["ETag"].strip('"')))
    return found


def _list_local(folder: str) -> list[FileInfo]:
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            stat = os.stat(path)
            found.append(FileInfo(path, stat.st_size, str(stat.st_mtime_ns)))
    return found


def relative_to(uri: str, folder_uri: str) -> str:
    """The part of ``uri`` below ``folder_uri``, with ``/`` separators (``a/b.parquet``): how a
    file found by :func:`list_files` is named relative to the folder that was listed."""
    if is_s3(folder_uri):
        return uri[len(folder_uri.rstrip("/")) + 1:]
    return Path(os.path.relpath(uri, folder_uri)).as_posix()


def upload_dir(local_dir: str | Path, uri: str) -> None:
    """Copy every file under ``local_dir`` to the folder ``uri`` (local or S3), keeping layout."""
    for info in list_files(str(local_dir)):
        relative = relative_to(info.uri, str(local_dir))
        target = join(uri, *relative.split("/"))
        if is_s3(target):
            bucket, key = _split_s3(target)
            boto3_client().upload_file(info.uri, bucket, key)  # multipart for large files
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(info.uri, target)


def download_dir(uri: str, local_dir: str | Path) -> None:
    """Copy every file under the folder ``uri`` (local or S3) into ``local_dir``, keeping layout."""
    for info in list_files(uri):
        relative = relative_to(info.uri, uri)
        target = Path(local_dir).joinpath(*relative.split("/"))
        if is_s3(info.uri):
            _download(info.uri, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(info.uri, target)


def open_output(uri: str):
    """A writable pyarrow stream to ``uri`` (``pq.write_table(table, stream)``); a local file's
    folders are created first. Not atomic: for files that are moved into place afterwards."""
    filesystem, path = filesystem_for(uri)
    if not is_s3(uri):
        filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    return filesystem.open_output_stream(path)


# ---------------------------------------------------------------------------------------------
# Local copies for libraries that read only local files (transformers, gensim)
# ---------------------------------------------------------------------------------------------
class LocalCopy:
    """A local path to a file or folder named by a URI: the path itself when it is local, else a
    download into a temporary folder, deleted by :meth:`cleanup` (or at the end of a ``with``).

    Attributes:
        path: the local file or folder; a downloaded file keeps its name.
    """

    def __init__(self, path: str, temporary: tempfile.TemporaryDirectory | None = None) -> None:
        self.path = path
        self._temporary = temporary

    def cleanup(self) -> None:
        if self._temporary is not None:
            self._temporary.cleanup()

    def __enter__(self) -> LocalCopy:
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


def local_folder(uri: str, only: Iterable[str] | None = None) -> LocalCopy:
    """The folder ``uri`` on this machine: itself when local, else its files downloaded.

    Args:
        only: download only the files and folders with these names at the top of the folder
            (for example a bundle without its weights); None: everything. A local folder is
            used whole either way.
    """
    if not is_s3(uri):
        return LocalCopy(uri)
    keep = None if only is None else set(only)
    temporary = tempfile.TemporaryDirectory(prefix="adabiobert-")
    try:
        target = Path(temporary.name, basename(uri))
        for info in list_files(uri):
            relative = relative_to(info.uri, uri)
            if keep is None or relative.split("/")[0] in keep:
                _download(info.uri, target.joinpath(*relative.split("/")))
    except BaseException:
        temporary.cleanup()
        raise
    return LocalCopy(str(target), temporary)


def cached_folder(uri: str, cache: str | Path, key: str, check: Callable[[Path], None] | None = None) -> str:
    """The folder ``uri`` on this machine, kept: itself when local, else downloaded once into
    ``<cache>/<key>`` and found there by later calls (other processes of the node included).

    The download goes to a temporary folder beside the target, is passed to ``check`` (which
    raises to refuse it), then renamed into place; an exclusive lock on ``<cache>/.<key>.lock``
    makes a node's concurrent callers wait for one download instead of making their own. ``key``
    must name the folder's content (a hash of it): a folder found under it is used as it is.

    Raises:
        whatever ``check`` raises; the download is then deleted.
    """
    if not is_s3(uri):
        return uri
    import fcntl

    root = Path(cache)
    target = root / key
    if target.is_dir():
        return str(target)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not target.is_dir():
            staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
            try:
                download_dir(uri, staging)
                if check is not None:
                    check(staging)
                staging.rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def local_file(uri: str, companions: bool = False) -> LocalCopy:
    """The file ``uri`` on this machine: itself when local, else downloaded under its own name.

    Args:
        companions: also download the files beside it whose names start with its name and a dot
            (``vectors.kv`` -> ``vectors.kv.vectors.npy``: gensim's large arrays).

    Raises:
        FileNotFoundError: no file at ``uri``.
    """
    if not is_s3(uri):
        if not os.path.isfile(uri):
            raise FileNotFoundError(uri)
        return LocalCopy(uri)
    if stat(uri) is None:
        raise FileNotFoundError(uri)
    parent, _, base = uri.rpartition("/")
    temporary = tempfile.TemporaryDirectory(prefix="adabiobert-")
    try:
        wanted = [uri]
        if companions:
            wanted += [info.uri for info in list_files(parent) if info.uri.startswith(f"{uri}.")
                       and "/" not in info.uri[len(parent) + 1:]]
        for found in wanted:
            _download(found, Path(temporary.name, found.rpartition("/")[2]))
    except BaseException:
        temporary.cleanup()
        raise
    return LocalCopy(os.path.join(temporary.name, base), temporary)


@contextmanager
def staged_output(uri: str) -> Iterator[str]:
    """A local folder to write a job's output into: ``uri`` itself when local (created), else a
    temporary folder whose files are uploaded to ``uri`` when the block ends without an error."""
    if not is_s3(uri):
        Path(uri).mkdir(parents=True, exist_ok=True)
        yield uri
        return
    with tempfile.TemporaryDirectory(prefix="adabiobert-out-") as folder:
        yield folder
        upload_dir(folder, uri)


def _download(uri: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    bucket, key = _split_s3(uri)
    boto3_client(bucket).download_file(bucket, key, str(target))


def boto3_client(bucket: str | None = None):
    """A boto3 S3 client for ``AWS_ENDPOINT_URL`` when set, with the default credential chain,
    or unsigned when :func:`s3_unsigned` says so, or when ``bucket`` is a public dataset
    (:func:`public_buckets`) that is read.

    Clients are cached per endpoint and signing (boto3 clients are thread-safe), so a test that
    points the variable at a new server, or unsets the credentials, gets a new client.
    """
    return _client_for(_endpoint(), s3_unsigned() or bucket in public_buckets())


@functools.lru_cache(maxsize=8)
def _client_for(endpoint: str | None, unsigned: bool):
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, config=Config(signature_version=UNSIGNED) if unsigned else None)


# ---------------------------------------------------------------------------------------------
# Commit primitives for jobs that publish files atomically (the annotation job's per-shard commit)
# ---------------------------------------------------------------------------------------------
def write_bytes_if_absent(uri: str, data: bytes) -> bool:
    """Create ``uri`` with ``data`` only if nothing is there yet; True when this call created it.

    S3: a conditional PUT (``IfNoneMatch="*"``), so of two writers racing for one key exactly one
    wins. Local: the bytes go to a temporary file that is then hard-linked to the target, which
    fails when the target exists; a reader never sees half a file.
    """
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        client = boto3_client()
        try:
            client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        except client.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise
        return True
    target = Path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(data)
    try:
        os.link(temporary, target)
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------------------------------------
# Compare-and-swap on one small file (the output lease, adabiobert/output_lease.py)
# ---------------------------------------------------------------------------------------------
def read_versioned(uri: str) -> tuple[bytes, str]:
    """The content of one small file and its version, for :func:`replace_if_version` and
    :func:`delete_if_version`: the ETag (quotes removed) for S3, the MD5 of the content locally
    (what S3's ETag is for a single-part PUT).

    Raises:
        FileNotFoundError: when the file or object does not exist.
    """
    if not is_s3(uri):
        data = Path(uri).read_bytes()
        return data, _content_version(data)
    bucket, key = _split_s3(uri)
    client = boto3_client()
    try:
        found = client.get_object(Bucket=bucket, Key=key)
    except client.exceptions.NoSuchKey as error:
        raise FileNotFoundError(uri) from error
    return found["Body"].read(), found["ETag"].strip('"')


def replace_if_version(uri: str, data: bytes, version: str) -> str | None:
    """Write ``data`` over ``uri`` only if the file there is still at ``version``
    (:func:`read_versioned`); the new version when this call replaced it, None when the file
    changed or is gone.

    S3: a conditional PUT (``IfMatch``). Local: the check and the rename are done holding an
    exclusive ``flock`` on the file's folder, which :func:`delete_if_version` takes too, so of two
    writers that read the same version exactly one replaces it.
    """
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        client = boto3_client()
        try:
            written = client.put_object(Bucket=bucket, Key=key, Body=data, IfMatch=f'"{version}"')
        except client.exceptions.ClientError as error:
            if _lost_race(error):
                return None
            raise
        return written["ETag"].strip('"')
    target = Path(uri)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(data)
    try:
        with _folder_lock(target.parent):
            if _local_version(target) != version:
                return None
            os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return _content_version(data)


def delete_if_version(uri: str, version: str) -> bool:
    """Delete ``uri`` only if the file there is still at ``version``; True when this call deleted it.

    S3: a conditional DELETE (``IfMatch``, which S3 general purpose buckets take since 2025-09);
    on an S3-compatible store that does not implement it, a HEAD then a plain DELETE (not atomic:
    a write between the two is lost). Local: under the folder lock of :func:`replace_if_version`.
    """
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        client = boto3_client()
        try:
            client.delete_object(Bucket=bucket, Key=key, IfMatch=f'"{version}"')
        except client.exceptions.ClientError as error:
            if _lost_race(error):
                return False
            if error.response.get("Error", {}).get("Code") not in ("NotImplemented", "501"):
                raise
            found = stat(uri)
            if found is None or found.version != version:
                return False
            client.delete_object(Bucket=bucket, Key=key)
        return True
    target = Path(uri)
    with _folder_lock(target.parent):
        if _local_version(target) != version:
            return False
        target.unlink()
    return True


def _lost_race(error) -> bool:
    """True for the S3 answers of a condition that no longer holds: the ETag differs (412), the
    object is gone (404), or another conditional write to the key was in flight (409)."""
    code = error.response.get("Error", {}).get("Code")
    return code in ("PreconditionFailed", "412", "NoSuchKey", "404", "NotFound", "ConditionalRequestConflict", "409")


def _content_version(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _local_version(path: Path) -> str | None:
    try:
        return _content_version(path.read_bytes())
    except FileNotFoundError:
        return None


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on a local folder, released when the block ends (or the process dies)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def move(source_uri: str, target_uri: str) -> None:
    """Move one file, replacing the target; both on the same side (local or the same S3 endpoint).

    Local: ``os.replace`` (atomic within one filesystem). S3: a server-side copy, then the source
    is deleted; the target appears whole or not at all.
    """
    if is_s3(source_uri) != is_s3(target_uri):
        raise ValueError(f"cannot move between local and S3: {source_uri} -> {target_uri}")
    if is_s3(source_uri):
        source_bucket, source_key = _split_s3(source_uri)
        bucket, key = _split_s3(target_uri)
        client = boto3_client()
        client.copy({"Bucket": source_bucket, "Key": source_key}, bucket, key)  # multipart above 8 MB
        client.delete_object(Bucket=source_bucket, Key=source_key)
        return
    Path(target_uri).parent.mkdir(parents=True, exist_ok=True)
    os.replace(source_uri, target_uri)


def delete(uris: list[str]) -> None:
    """Delete files; ones already gone are ignored."""
    s3_keys: dict[str, list[str]] = {}
    for uri in uris:
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            s3_keys.setdefault(bucket, []).append(key)
        else:
            Path(uri).unlink(missing_ok=True)
    client = boto3_client() if s3_keys else None
    for bucket, keys in s3_keys.items():
        for first in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            objects = [{"Key": key} for key in keys[first:first + 1000]]
            client.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


def remove_empty_folder(uri: str) -> None:
    """Remove the local folder ``uri`` if it is empty; nothing otherwise (S3 has no folders)."""
    if not is_s3(uri):
        try:
            os.rmdir(uri)
        except OSError:  # not empty, or not there
            pass


def delete_tree(uri: str) -> None:
    """Delete a folder (local) or every object under a prefix (S3); nothing happens if it is absent."""
    if is_s3(uri):
        delete([info.uri for info in list_files(uri)])
    else:
        shutil.rmtree(uri, ignore_errors=True)


def publish_dir(local_dir: str | Path, uri: str, last: str) -> None:
    """Copy a finished folder to ``uri`` so that no reader ever finds a part of it there.

    Every file goes first to a hidden staging sibling, ``<parent>/.<name>.<random>.staging``; a
    failure while staging deletes that copy and leaves ``uri`` as it was. Then:

    - Local: the staged folder is renamed onto ``uri`` (an existing folder there is renamed
      aside first and deleted after), so ``uri`` holds the old folder, nothing, or the whole
      new one.
    - S3 has no rename of a prefix: an existing folder's ``last`` file is deleted first, then
      the rest of it, then the staged files are moved in with ``last`` moved last, so a prefix
      that holds ``last`` is always complete.

    Args:
        local_dir: the folder to publish.
        uri: the target folder, local or S3.
        last: the path, relative to the folder, of the file that marks it complete.

    Raises:
        FileNotFoundError: if ``local_dir`` has no file ``last``; nothing is written.
    """
    if not (Path(local_dir) / last).is_file():
        raise FileNotFoundError(f"{local_dir}: {last} is missing, so the folder cannot be marked complete")
    staging = hidden_sibling(uri, "staging")
    try:
        upload_dir(local_dir, staging)
    except BaseException:
        delete_tree(staging)
        raise
    if is_s3(uri):
        _move_prefix(staging, uri, last)
    else:
        _replace_folder(staging, uri)


def hidden_sibling(uri: str, kind: str) -> str:
    """``<parent>/.<name>.<random>.<kind>``, beside ``uri``: where to stage a file or folder that
    is then moved onto ``uri`` (same filesystem, same bucket)."""
    uri = uri.rstrip("/")
    if is_s3(uri):
        parent, _, name = uri.rpartition("/")
        return f"{parent}/.{name}.{uuid.uuid4().hex}.{kind}"
    path = Path(uri)
    return str(path.with_name(f".{path.name}.{uuid.uuid4().hex}.{kind}"))


def _replace_folder(staged: str, target: str) -> None:
    """Rename the local folder ``staged`` onto ``target``, replacing what was there."""
    aside = None
    if os.path.exists(target):
        aside = hidden_sibling(target, "old")
        os.replace(target, aside)
    os.replace(staged, target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _move_prefix(staged: str, target: str, last: str) -> None:
    """Move every S3 object under ``staged`` to ``target``, ``last`` after all the others."""
    delete([join(target, *last.split("/"))])  # an old folder stops looking complete first
    delete_tree(target)
    relatives = sorted((relative_to(info.uri, staged) for info in list_files(staged)), key=lambda r: r == last)
    for relative in relatives:
        move(join(staged, *relative.split("/")), join(target, *relative.split("/")))
