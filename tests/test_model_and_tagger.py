"""The assembled model: training reduces the loss, bundles round-trip, the tagger gives offsets."""

import json

import pytest
import torch

from adabiobert.model.assembly import build_example_encoder, build_model, build_optimizer
from adabiobert.model.backbone import load_tokenizer
from adabiobert.model.checkpoint import load_bundle, save_bundle
from adabiobert.model.engine import fit, predict
from adabiobert.model.network import parameter_groups
from adabiobert.model.tagger import Tagger
from adabiobert.model.word_vectors import WordVectors
from adabiobert.spans import is_valid_iob2
from adabiobert.training_config import LossConfig, ModelConfig, TrainConfig


@pytest.fixture(scope="module")
def word_vectors(ncbi):
    from gensim.models import Word2Vec

    sentences = [list(s.words) for s in ncbi.train[:1000]]
    model = Word2Vec(sentences, vector_size=16, window=7, min_count=1, epochs=2, workers=1, seed=1)
    return WordVectors.from_keyed_vectors(model.wv)


@pytest.fixture(scope="module")
def trained(tiny_backbone_dir, ncbi, word_vectors, tmp_path_factory):
    """A tiny tagger trained for 3 epochs on 300 NCBI sentences, and its bundle folder."""
    config = TrainConfig(model=ModelConfig(backbone=str(tiny_backbone_dir), max_subwords=64, window_overlap=16),
                         loss=LossConfig.parse("learned"), epochs=3, batch_size=16, seed=3)  # theta in play
    torch.manual_seed(3)
    tokenizer = load_tokenizer(config.model.backbone)
    model = build_model(config, ncbi.labels, word_vectors)
    encoder = build_example_encoder(config.model, model, tokenizer, word_vectors)
    train, dev = encoder.encode_tagged(ncbi.train[:300]), encoder.encode_tagged(ncbi.dev[:80])
    optimizer, scheduler = build_optimizer(model, config, train, world_size=1)
    steps = []
    reports = list(fit(model, optimizer, scheduler, train, dev, ncbi.labels, config, torch.device("cpu"), tokenizer.pad_token_id,
                       progress=steps.append, progress_every=5))
    folder = save_bundle(tmp_path_factory.mktemp("bundle") / "model", model, tokenizer, config.model, word_vectors, {"name": "tiny"})
    return {"config": config, "model": model, "tokenizer": tokenizer, "dev": dev, "reports": reports, "folder": folder,
            "steps": steps}


def test_fit_yields_one_report_per_epoch_and_the_loss_falls(trained):
    reports = trained["reports"]
    assert [r.epoch for r in reports] == [1, 2, 3]
    assert reports[-1].train_loss < reports[0].train_loss
    for report in reports:
        assert 0 < report.alpha < 1
        assert {"entity_f1", "paper_token_micro_f1", "entity_macro_f1"} <= set(report.dev)


def test_fit_reports_progress_every_n_steps_and_at_each_epochs_last_step(trained):
    steps = trained["steps"]  # 300 sentences in micro-batches of 16: 19 steps per epoch
    assert [(s.epoch, s.step) for s in steps] == [(e, s) for e in (1, 2, 3) for s in (5, 10, 15, 19)]
    assert {(s.steps, s.run_steps) for s in steps} == {(19, 57)} and steps[-1].run_step == 57
    assert [r.steps for r in trained["reports"]] == [19, 19, 19]


def test_bundle_holds_no_pickle_and_reloads_with_identical_predictions(trained):
    folder = trained["folder"]
    files = {p.name for p in folder.rglob("*") if p.is_file()}
    assert "model.safetensors" in files and "adabiobert.json" in files and "word_vocab.json" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl", ".pth"))]
    reloaded = load_bundle(folder)
    before = predict(trained["model"], trained["dev"], trained["config"], torch.device("cpu"), trained["tokenizer"].pad_token_id)
    after = predict(reloaded.model, trained["dev"], trained["config"], torch.device("cpu"), reloaded.tokenizer.pad_token_id)
    assert before == after
    manifest = json.loads((folder / "adabiobert.json").read_text())
    assert manifest["labels"]["tags"] == ["O", "B-Disease", "I-Disease"]


def test_tagger_returns_character_offsets_into_the_given_text(trained):
    tagger = Tagger.from_pretrained(trained["folder"], device="cpu")
    texts = ["Germline mutations of the APC gene cause familial adenomatous polyposis.  Breast cancer is common.", ""]
    results = tagger.tag(texts)
    assert len(results) == 2 and results[1] == []
    for entity in results[0]:
        assert texts[0][entity.start : entity.end] == entity.text
        assert entity.label == "Disease"
        assert 0.0 <= entity.confidence <= 1.0
    taggings = tagger.tag_words([["familial", "adenomatous", "polyposis"], []])
    assert is_valid_iob2(taggings[0].tags) and taggings[1].tags == ()
    assert tagger.model_id.startswith("tiny@")


def test_tagger_rejects_a_bare_string(trained):
    with pytest.raises(TypeError):
        Tagger.from_pretrained(trained["folder"], device="cpu").tag("one text")


def test_parameter_groups_put_theta_alone_and_keep_decay_off_crf(trained):
    groups = {g["name"]: g for g in parameter_groups(trained["model"], 1e-4, 1e-3, 5e-3, 0.01)}
    assert groups["alpha"]["lr"] == 5e-3 and groups["alpha"]["weight_decay"] == 0.0
    crf_ids = {id(p) for p in trained["model"].crf.parameters()}
    assert crf_ids <= {id(p) for p in groups["head_nd"]["params"]}
    assert all(g["weight_decay"] == 0.0 for n, g in groups.items() if n.endswith("_nd"))


def test_word_vectors_look_up_exact_then_lower_case_then_unknown(word_vectors):
    known = word_vectors.words[0]
    assert word_vectors.lookup(known) == 2
    assert word_vectors.lookup("zzz-not-a-word") == 1
    lower = next(w for w in word_vectors.words if w.islower() and w.isalpha())
    assert word_vectors.lookup(lower.upper()) == word_vectors.lookup(lower)


def test_word_vectors_load_the_files_gensim_writes(tmp_path, word_vectors):
    from gensim.models import KeyedVectors

    keyed = KeyedVectors(vector_size=word_vectors.dim)
    keyed.add_vectors(list(word_vectors.words), word_vectors.vectors)
    keyed.save(str(tmp_path / "vectors.kv"))
    keyed.save_word2vec_format(str(tmp_path / "vectors.txt"), binary=False)
    for name in ("vectors.kv", "vectors.txt"):
        loaded = WordVectors.load(tmp_path / name)
        assert loaded.words == word_vectors.words
        assert loaded.vectors == pytest.approx(word_vectors.vectors, abs=1e-5)
    with pytest.raises(FileNotFoundError, match="missing.kv"):
        WordVectors.load(tmp_path / "missing.kv")


# The pipelined predict (device half, then host half one batch later) against the per-batch
# code it replaced, which synced with the host three times per batch.

def _one_batch_at_a_time(model, examples, budget, pad_id):
    from adabiobert.model.batching import budget_batches, collate

    paths, confidences = [None] * len(examples), [None] * len(examples)
    with torch.no_grad():
        for indices in budget_batches(examples, budget):
            batch = collate([examples[i] for i in indices], pad_id)
            emissions = model.emissions(batch)
            mask = batch["word_mask"]
            best = model.crf.viterbi(emissions, mask)  # (batch, words)
            chosen = model.crf.marginals(emissions, mask).gather(2, best.unsqueeze(-1)).squeeze(-1)  # (batch, words)
            for row, i in enumerate(indices):
                n = int(mask[row].sum())
                paths[i], confidences[i] = best[row, :n].tolist(), chosen[row, :n].tolist()
    return paths, confidences


@pytest.fixture(scope="module")
def dev_sentences(ncbi):
    """200 dev sentences, one longer than a 64-subword window, and an empty one."""
    return [list(s.words) for s in ncbi.dev[:200]] + [[w for s in ncbi.dev[200:210] for w in s.words], []]


@pytest.mark.parametrize("budget", [8192, 300])  # one batch for most sentences; dozens of batches
def test_pipelined_tagging_equals_one_batch_at_a_time(tiny_bundle, dev_sentences, budget):
    tagger = Tagger.from_pretrained(tiny_bundle, device="cpu", subword_budget=budget)
    examples = tagger.encode_words(dev_sentences)
    assert max(len(e.encoded.windows) for e in examples) > 1
    positions = [i for i, e in enumerate(examples) if e.num_words]
    paths, confidences = _one_batch_at_a_time(tagger.model, [examples[i] for i in positions], budget, tagger._pad_id)
    taggings = tagger.tag_words(dev_sentences)
    assert [t.tags for t in taggings[:-1]] == [tuple(tagger.labels.tags[t] for t in p) for p in paths]
    assert [t.confidences for t in taggings[:-1]] == [tuple(c) for c in confidences]  # exact, not approx
    assert taggings[-1].tags == ()


def test_engine_predict_equals_one_batch_at_a_time_with_word_vectors(trained):
    config, dev, pad_id = trained["config"], trained["dev"], trained["tokenizer"].pad_token_id
    expected = _one_batch_at_a_time(trained["model"], dev, config.eval_subword_budget, pad_id)
    assert predict(trained["model"], dev, config, torch.device("cpu"), pad_id, with_confidence=True) == expected
    assert predict(trained["model"], dev, config, torch.device("cpu"), pad_id) == expected[0]


class _Replay(torch.nn.Module):
    """An encoder that returns a recorded output: transformers' own SDPA mask check reads the
    padding mask on the host, which is theirs, not ours."""

    def __init__(self, output):
        super().__init__()
        self.output = output

    def forward(self, **inputs):
        return self.output


def test_the_device_half_of_predict_never_reads_a_tensor_on_the_host(tiny_bundle, dev_sentences, monkeypatch):
    from adabiobert.model.batching import collate
    from adabiobert.model.network import predictions_to_lists

    tagger = Tagger.from_pretrained(tiny_bundle, device="cpu")
    model = tagger.model
    batch = collate(tagger.encode_words(dev_sentences[:-1]), tagger._pad_id)
    expected = model.predict(batch, with_confidence=True)
    with torch.no_grad():
        model.encoder = _Replay(model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]))

    def refuse(*args, **kwargs):
        raise AssertionError("host sync inside the device half")

    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))  # as CUDA runs it: checks skipped
    for name in ("tolist", "item", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    predicted = model.predict_on_device(batch, with_confidence=True)
    monkeypatch.undo()
    assert set(predicted) == {"paths", "lengths", "confidences"}
    assert all(isinstance(t, torch.Tensor) for t in predicted.values())
    assert predictions_to_lists(predicted) == expected
