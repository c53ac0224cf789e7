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
