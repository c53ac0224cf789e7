"""The question encoder loaded ahead (`warm_up`), in-process: the real export needs the real model
(tests/test_real_model.py, slow); here a stand-in records how it was loaded."""

from __future__ import annotations

import threading

import pytest

from semsearch import embeddings


class _Recorded:
    """Stands in for OnnxEmbedder: notes the directory, the threads and the thread it was made on."""

    made: list[tuple] = []

    def __init__(self, directory, *, threads=None, workers=1):
        self.directory = directory
        _Recorded.made.append((directory, threads, workers, threading.current_thread().name))


@pytest.fixture
def one_export(tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "OnnxEmbedder", _Recorded)
    monkeypatch.delenv("SEMSEARCH_NO_ONNX", raising=False)
    _Recorded.made = []
    directory = embeddings.encoder_dir("some-model", index_dir=tmp_path)
    directory.mkdir(parents=True)
    (directory / embeddings.EXPORT_CONFIG).write_text("{}")
    yield directory
    embeddings._warming.clear()


def test_the_single_export_is_loaded_ahead_on_its_own_thread_with_one_thread_and_handed_over(one_export, tmp_path):
    embeddings.warm_up(index_dir=tmp_path)
    warming = embeddings._warming[one_export.resolve()]
    loaded = warming.result(timeout=10)
    assert isinstance(loaded, _Recorded) and loaded.directory == one_export
    assert _Recorded.made == [(one_export, 1, 1, "semsearch-warm-encoder")]
    # The question's encoder is the one loaded ahead, not a second one.
    assert embeddings.embedder_for("some-model", index_dir=tmp_path) is loaded
    assert len(_Recorded.made) == 1 and not embeddings._warming


def test_no_encoder_is_loaded_ahead_when_onnx_is_turned_off_or_the_export_is_not_single(
    one_export, tmp_path, monkeypatch
):
    monkeypatch.setenv("SEMSEARCH_NO_ONNX", "1")
    embeddings.warm_up(index_dir=tmp_path)
    assert not embeddings._warming and _Recorded.made == []
    monkeypatch.delenv("SEMSEARCH_NO_ONNX")
    other = embeddings.encoder_dir("other-model", index_dir=tmp_path)
    other.mkdir()
    (other / embeddings.EXPORT_CONFIG).write_text("{}")
    embeddings.warm_up(index_dir=tmp_path)  # two exports: which one a question needs is not known yet
    assert not embeddings._warming and _Recorded.made == []


class _Module:
    """A stand-in for one module of a sentence-transformers pipeline, named as the real ones are."""

    config_asked = 0

    def get_config_dict(self):
        _Module.config_asked += 1
        return {"pooling_mode": "max"}  # a pooling the export cannot reproduce: stops there


@pytest.mark.parametrize(
    "kinds, read_on",
    [
        (["Transformer", "Pooling"], True),
        (["Transformer", "Pooling", "Normalize"], True),
        (["Transformer", "Pooling", "Dense"], False),  # a layer after pooling the export lacks
        (["Transformer", "Pooling", "Normalize", "Dense"], False),
        (["Pooling", "Transformer"], False),
    ],
)
def test_only_a_transformer_then_pooling_then_normalisation_is_exported(tmp_path, monkeypatch, kinds, read_on):
    class Pipeline(list):
        tokenizer = None

    pipeline = Pipeline(type(kind, (_Module,), {})() for kind in kinds)
    monkeypatch.setattr(embeddings, "_load", lambda name: pipeline)
    _Module.config_asked = 0
    assert embeddings.export_onnx("some-model", index_dir=tmp_path) is None
    assert _Module.config_asked == int(read_on)  # its pooling read: the architecture was taken


class _Exporting(Exception):
    """Raised by the stand-in tokenizer: the export got past every check and began."""


@pytest.mark.parametrize(
    "pooling, backend, begins",
    [
        ("mean", True, True),
        ("cls", True, True),
        ("max", True, False),  # a pooling the ONNX encoder does not reproduce
        (None, True, False),
        ("mean", False, False),  # a slow (Python) tokenizer: nothing to save for `tokenizers`
    ],
)
def test_an_export_begins_only_for_mean_or_cls_pooling_and_a_fast_tokenizer(
    tmp_path, monkeypatch, pooling, backend, begins
):
    class Tokenizer:
        def __call__(self, *args, **kwargs):
            raise _Exporting

    if backend:
        Tokenizer.backend_tokenizer = object()

    class Pooling(_Module):
        def get_config_dict(self):
            return {"pooling_mode": pooling}

    class Pipeline(list):
        tokenizer = Tokenizer()

    pipeline = Pipeline([type("Transformer", (_Module,), {})(), Pooling(), type("Normalize", (_Module,), {})()])
    monkeypatch.setattr(embeddings, "_load", lambda name: pipeline)
    if begins:
        with pytest.raises(_Exporting):
            embeddings.export_onnx("some-model", index_dir=tmp_path)
    else:
        assert embeddings.export_onnx("some-model", index_dir=tmp_path) is None


# --- the ONNX encoder, on a model small enough to compute by hand ------------------------------------
# A one-operator graph: each token's hidden state is its row of TABLE (the pad token's is far off,
# so a pad counted in a mean shows). The tokenizer splits on whitespace.
VOCAB = {"[PAD]": 0, "[UNK]": 1, "a": 2, "b": 3, "c": 4, "d": 5}
TABLE = [[9, 9], [0, 0], [1, 0], [0, 1], [3, 4], [2, 2]]


def tiny_export(directory, *, pooling="mean", normalize=True, max_seq_length=8):
    import json

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from tokenizers import Tokenizer, models, pre_tokenizers

    from semsearch.index import digest_files

    directory.mkdir(parents=True)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["hidden"], axis=0)],
        "tiny",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"]) for n in names],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "tokens", 2])],
        initializer=[numpy_helper.from_array(np.array(TABLE, dtype=np.float32), "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(directory / "model.onnx"))
    tokenizer = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(directory / "tokenizer.json"))
    config = {
        "format": embeddings.EXPORT_FORMAT,
        "model": "tiny",
        "inputs": names,
        "pooling": pooling,
        "normalize": normalize,
        "max_seq_length": max_seq_length,
        "pad_id": 0,
        "pad_token": "[PAD]",
        "dimension": 2,
        "files": digest_files(directory),
    }
    config["check"] = embeddings._settings_digest(config)
    (directory / embeddings.EXPORT_CONFIG).write_text(json.dumps(config))
    return directory


def _unit(x, y):
    norm = (x * x + y * y) ** 0.5
    return [x / norm, y / norm]


def test_mean_pooling_averages_a_text_s_own_tokens_never_its_padding_and_keeps_the_texts_order(tmp_path):
    import numpy as np

    encoder = embeddings.OnnxEmbedder(tiny_export(tmp_path / "tiny"))
    texts = ["a b", "c", "a a a d"]  # one batch, padded to four tokens
    # Means: (1,0)+(0,1) over 2; (3,4); 3×(1,0)+(2,2) over 4 = (1.25, 0.5); each to unit length.
    expected = [_unit(0.5, 0.5), [0.6, 0.8], _unit(1.25, 0.5)]
    vectors = encoder.encode(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 2)
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)
    np.testing.assert_allclose(encoder.encode(texts, batch_size=1), expected, rtol=1e-6)
    side_by_side = embeddings.OnnxEmbedder(tmp_path / "tiny", workers=2)
    np.testing.assert_allclose(side_by_side.encode(texts, batch_size=1), expected, rtol=1e-6)
    assert encoder.dimension == 2 and encoder.model_name == "tiny"
    empty = encoder.encode([])
    assert empty.shape == (0, 2) and empty.dtype == np.float32


def test_cls_pooling_takes_the_first_token_and_normalising_is_the_export_s_setting(tmp_path):
    import numpy as np

    cls = embeddings.OnnxEmbedder(tiny_export(tmp_path / "cls", pooling="cls", normalize=False))
    np.testing.assert_allclose(cls.encode(["c a", "a a a d", "d"]), [[3, 4], [1, 0], [2, 2]])
    raw = embeddings.OnnxEmbedder(tiny_export(tmp_path / "raw", normalize=False))
    np.testing.assert_allclose(raw.encode(["a b", "a a a d"]), [[0.5, 0.5], [1.25, 0.5]])


def test_a_text_is_read_to_max_seq_length_tokens_and_a_long_one_is_cut_before_tokenizing(tmp_path):
    import numpy as np

    encoder = embeddings.OnnxEmbedder(tiny_export(tmp_path / "tiny", normalize=False, max_seq_length=8))
    np.testing.assert_allclose(encoder.encode(["a a a a a a a a d d d d"]), [[1, 0]])  # the d's are past the end
    # 4,016 characters, past 64 × 8: cut at 512, its first eight tokens whole well before the cut.
    long = "a " * 8 + "d " * 2000
    assert encoder._head(long) == long[: 64 * 8]
    assert encoder._head("a a d") == "a a d"
    np.testing.assert_allclose(encoder.encode([long]), [[1, 0]])


def test_a_damaged_export_is_refused_and_a_question_falls_back_to_sentence_transformers(tmp_path, monkeypatch):
    directory = tiny_export(embeddings.encoder_dir("tiny", index_dir=tmp_path))
    assert embeddings.is_current_export(directory)
    assert isinstance(embeddings.embedder_for("tiny", index_dir=tmp_path), embeddings.OnnxEmbedder)
    monkeypatch.setenv("SEMSEARCH_NO_ONNX", "1")
    assert isinstance(embeddings.embedder_for("tiny", index_dir=tmp_path), embeddings.Embedder)
    monkeypatch.delenv("SEMSEARCH_NO_ONNX")
    (directory / "tokenizer.json").write_text("{}")
    assert not embeddings.is_current_export(directory)
    with pytest.raises(embeddings.ExportDamaged, match="tokenizer.json"):
        embeddings.OnnxEmbedder(directory)
    fallback = embeddings.embedder_for("tiny", index_dir=tmp_path)
    assert isinstance(fallback, embeddings.Embedder) and fallback.model_name == "tiny"
