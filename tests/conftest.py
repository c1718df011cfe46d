"""Shared fixtures: one local Ray for the whole suite, a loopback S3 server, the data roots.

Fixtures are grouped by what they start; each block says who uses it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_ROOT = Path(os.environ.get("ADABIOBERT_SHARED", REPO_ROOT.parent / "shared"))


# ---------------------------------------------------------------------------------------------
# Data roots (../shared beside the checkout, as in CI)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def corpora_root() -> Path:
    root = Path(os.environ.get("ADABIOBERT_DATA_ROOT", SHARED_ROOT / "corpora"))
    if not (root / "NCBI-disease-IOB").is_dir():
        pytest.skip(f"the IOB corpora are not at {root} (set ADABIOBERT_DATA_ROOT)")
    return root


@pytest.fixture(scope="session")
def shared_root() -> Path:
    if not SHARED_ROOT.is_dir():
        pytest.skip(f"../shared is not at {SHARED_ROOT} (set ADABIOBERT_SHARED)")
    return SHARED_ROOT


# ---------------------------------------------------------------------------------------------
# One local Ray for the suite. More logical CPUs than cores: with 2, Ray Data actor pools can
# hold every CPU and starve the read tasks (ray-project/ray#44687).
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ray_session():
    import ray

    os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
    if not ray.is_initialized():
        ray.init(
            address="local",  # never join another Ray on this machine (a developer's, a job's)
            num_cpus=8,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=1_000_000_000,
            configure_logging=False,
        )
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_no_progress_timeout_s = 300
    yield ray
    ray.shutdown()


# ---------------------------------------------------------------------------------------------
# A real S3-compatible server on loopback (moto in server mode).
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def s3_server():
    """Start moto's S3 server on 127.0.0.1 and point the standard AWS variables at it.

    Yields a dict with ``endpoint_url``; the credentials are dummies set in the environment so
    that boto3, pyarrow and Ray workers started afterwards all find them through the standard
    chain.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _S3_ENV}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    yield {"endpoint_url": endpoint}
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")


@pytest.fixture
def anonymous_s3(s3_server, monkeypatch, tmp_path):
    """The loopback server as a user with no AWS credentials at all sees it (PMC's public bucket
    is read so): none in the environment, no ``~/.aws`` files, no instance metadata. Yields a
    namespace whose ``signed()`` is a context manager that puts the server's dummy credentials
    back for a block (to fill a bucket first), and whose ``make_public(bucket)`` gives a bucket the
    policy of a public dataset (anyone may list it and get its objects)."""
    import json
    from contextlib import contextmanager
    from types import SimpleNamespace

    for name in _CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    @contextmanager
    def signed():
        with monkeypatch.context() as inside:
            inside.setenv("AWS_ACCESS_KEY_ID", "testing")
            inside.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            yield

    def make_public(bucket: str) -> None:
        import boto3

        # moto checks an unsigned HEAD against "s3:HeadObject", which AWS folds into s3:GetObject.
        reads = ["s3:GetObject", "s3:HeadObject"]
        statements = [{"Effect": "Allow", "Principal": "*", "Action": reads, "Resource": f"arn:aws:s3:::{bucket}/*"},
                      {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}]
        client = boto3.client("s3", endpoint_url=s3_server["endpoint_url"], aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))

    return SimpleNamespace(signed=signed, make_public=make_public)


_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                   "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_NO_SIGN_REQUEST")


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh, empty bucket on the loopback server; yields its name."""
    import uuid

    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server["endpoint_url"]).create_bucket(Bucket=name)
    return name


# ---------------------------------------------------------------------------------------------
# Corpora and a tiny random BERT built from their words (no download, seconds to build).
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ncbi(corpora_root):
    from adabiobert.corpora.iob import load_corpus

    return load_corpus("NCBI-disease", corpora_root)


@pytest.fixture(scope="session")
def tiny_backbone_dir(tmp_path_factory, ncbi) -> Path:
    from adabiobert.testing.tiny_models import tiny_backbone

    return tiny_backbone(tmp_path_factory.mktemp("tiny-bert"), [s.words for s in ncbi.train])


# ---------------------------------------------------------------------------------------------
# A tiny tagger bundle (batch tagging, CLI): 1 epoch on 200 NCBI sentences, then the B- bias is
# raised so that about one word in ten starts a mention (an epoch on a random 2-layer BERT tags
# nothing). Predictions are meaningless but deterministic and not empty.
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_bundle(tiny_backbone_dir, ncbi, tmp_path_factory) -> Path:
    import torch

    from adabiobert.model.assembly import build_example_encoder, build_model, build_optimizer
    from adabiobert.model.backbone import load_tokenizer
    from adabiobert.model.batching import collate
    from adabiobert.model.checkpoint import save_bundle
    from adabiobert.model.engine import fit
    from adabiobert.training_config import LossConfig, ModelConfig, OptimConfig, TrainConfig

    config = TrainConfig(model=ModelConfig(backbone=str(tiny_backbone_dir), max_subwords=64, window_overlap=16),
                         loss=LossConfig.parse("learned"),  # the mix its B- bias below was calibrated on
                         epochs=1, batch_size=8, seed=5, optim=OptimConfig(encoder_lr=1e-3, head_lr=1e-2))
    torch.manual_seed(5)
    tokenizer = load_tokenizer(config.model.backbone)
    model = build_model(config, ncbi.labels, None)
    encoder = build_example_encoder(config.model, model, tokenizer, None)
    train = encoder.encode_tagged(ncbi.train[:200])
    optimizer, scheduler = build_optimizer(model, config, train, world_size=1)
    for _ in fit(model, optimizer, scheduler, train, [], ncbi.labels, config, torch.device("cpu"), tokenizer.pad_token_id):
        pass
    model.eval()
    with torch.no_grad():
        batch = collate(train, tokenizer.pad_token_id)
        emissions = model.emissions(batch)[batch["word_mask"]]  # (words, tags)
        begin = ncbi.labels.tags.index("B-Disease")
        margin = emissions[:, begin] - emissions[:, ncbi.labels.tags.index("O")]  # (words,)
        model.classifier.bias[begin] -= torch.quantile(margin, 0.9)
    return save_bundle(tmp_path_factory.mktemp("tiny-bundle") / "model", model, tokenizer, config.model, None, {"name": "tiny"})


@pytest.fixture(scope="module")
def ray_data(ray_session):
    """The shared Ray, with Ray Data's no-progress timeout raised for these slow 2-core machines."""
    from ray.data import DataContext

    context = DataContext.get_current()
    saved = context.execution_no_progress_timeout_s
    context.execution_no_progress_timeout_s = 120
    yield ray_session
    context.execution_no_progress_timeout_s = saved
