"""Word-to-subword encoding, windows for long sentences and the gather index of a batch."""

import pytest

from adabiobert.model.backbone import load_tokenizer
from adabiobert.model.batching import Example, budget_batches, collate
from adabiobert.model.subwords import SubwordEncoder, plan_windows


@pytest.fixture(scope="module")
def tokenizer(tiny_backbone_dir):
    return load_tokenizer(str(tiny_backbone_dir))


def test_plan_windows_covers_every_word_within_capacity():
    lengths = [1, 3, 2, 1, 1, 4, 2, 2, 1, 3, 1, 1]
    windows = plan_windows(lengths, capacity=6, overlap=2)
    covered = set()
    for start, end in windows:
        assert sum(lengths[start:end]) <= 6
        covered.update(range(start, end))
    assert covered == set(range(len(lengths)))
    starts = [s for s, _ in windows]
    assert starts == sorted(set(starts))


def test_short_sentence_is_one_window_with_first_subword_positions(tokenizer):
    encoder = SubwordEncoder(tokenizer, max_subwords=64, overlap=8)
    words = ["adenomatous", "polyposis", "coli", "(", "APC", ")"]
    encoded = encoder.encode(words)
    assert len(encoded.windows) == 1
    window = encoded.windows[0]
    assert window[0] == tokenizer.cls_token_id and window[-1] == tokenizer.sep_token_id
    for word, position in zip(words, encoded.word_position):
        first_piece = tokenizer(word, add_special_tokens=False)["input_ids"][0]
        assert window[position] == first_piece


def test_long_sentence_is_windowed_not_truncated(tokenizer):
    encoder = SubwordEncoder(tokenizer, max_subwords=16, overlap=4)
    words = [f"w{i % 7}" for i in range(40)] + ["cancer"]
    encoded = encoder.encode(words)
    assert len(encoded.windows) > 1
    assert all(len(w) <= 16 for w in encoded.windows)
    assert encoded.num_words == len(words)
    pieces = encoder.subwords(words)
    for index, (window, position) in enumerate(zip(encoded.word_window, encoded.word_position)):
        assert encoded.windows[window][position] == pieces[index][0]


def test_a_word_the_tokenizer_drops_becomes_unknown(tokenizer):
    encoder = SubwordEncoder(tokenizer, max_subwords=32, overlap=4)
    assert encoder.subwords(["\u200b"]) == [(tokenizer.unk_token_id,)]


def test_collate_gathers_each_words_first_subword_across_windows(tokenizer):
    encoder = SubwordEncoder(tokenizer, max_subwords=16, overlap=4)
    sentences = [[f"x{i}" for i in range(30)], ["cancer", "of", "the", "colon"]]
    examples = [Example(encoder.encode(s), tuple([1] * len(s)), tuple([0] * len(s))) for s in sentences]
    batch = collate(examples, pad_subword_id=tokenizer.pad_token_id)
    flat = batch["input_ids"].reshape(-1)
    for b, words in enumerate(sentences):
        gathered = flat[batch["word_index"][b, : len(words)]].tolist()
        assert gathered == [p[0] for p in encoder.subwords(words)]
    assert batch["word_mask"].sum(1).tolist() == [30, 4]
    assert batch["tags"].shape == (2, 30)


def test_budget_batches_sort_by_length_and_respect_the_budget(tokenizer):
    encoder = SubwordEncoder(tokenizer, max_subwords=64, overlap=8)
    lengths = [3, 40, 5, 12, 40, 7, 2, 30]
    examples = [Example(encoder.encode(["w"] * n), tuple([1] * n)) for n in lengths]
    batches = budget_batches(examples, subword_budget=100)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        windows = [w for i in batch for w in examples[i].encoded.windows]
        assert len(batch) == 1 or len(windows) * max(len(w) for w in windows) <= 100
    assert [examples[b[0]].num_subwords for b in batches] == sorted(examples[b[0]].num_subwords for b in batches)


def test_encoded_sentences_survive_arrow_and_nulls_mean_not_encoded(tokenizer):
    import pyarrow as pa

    from adabiobert.annotation.subword_columns import ENCODED_FIELDS, encoded_record, examples_from_arrow

    encoder = SubwordEncoder(tokenizer, max_subwords=16, overlap=4)
    sentences = [[f"x{i}" for i in range(30)], ["cancer", "of", "the", "colon"]]
    examples = [Example(encoder.encode(s), tuple(range(2, 2 + len(s)))) for s in sentences]
    records = [encoded_record(examples[0]), encoded_record(None), encoded_record(examples[1])]
    array = pa.array(records, pa.struct(list(ENCODED_FIELDS)))
    assert examples_from_arrow(array) == [examples[0], None, examples[1]]
    assert len(examples[0].encoded.windows) > 1


def test_encoded_sentences_whose_fields_disagree_are_refused(tokenizer):
    import pyarrow as pa

    from adabiobert.annotation.subword_columns import ENCODED_FIELDS, encoded_record, examples_from_arrow

    example = Example(SubwordEncoder(tokenizer, max_subwords=16, overlap=4).encode(["a", "b"]), (1, 1))
    broken = {**encoded_record(example), "word_vector_ids": [1]}
    with pytest.raises(ValueError, match="encoded sentence 0: 2 word windows, 2 word positions and 1 word-vector rows"):
        examples_from_arrow(pa.array([broken], pa.struct(list(ENCODED_FIELDS))))
