"""`ingest jsonl --ray`'s embedder (semsearch/cluster.py), in-process and quick: Ray stood in for by
a recording double, so that what the embedder asks of Ray (how it starts it, how many workers, which
texts go to which worker, what it stops) is pinned without a cluster. The real Ray path is in
tests/test_real_model.py (slow)."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from semsearch import cluster
from semsearch.errors import SemsearchError


class _Actor:
    """A worker: answers each chunk with one row per text, (length of the text, this worker's number)."""

    def __init__(self, ray, number, files):
        self.number, self.files, self.ray = number, files, ray
        self.encode = self  # actor.encode.remote(chunk)

    def remote(self, chunk):
        self.ray.sent.append((self.number, list(chunk)))
        return np.array([[len(text), self.number] for text in chunk], dtype=np.float64)


class _FakeRay:
    def __init__(self, *, initialized=False, resources=None, init_error=None):
        self.initialized, self.resources, self.init_error = initialized, resources or {}, init_error
        self.inits, self.put_values, self.sent, self.killed, self.remote_options = [], [], [], [], []
        self.shutdowns = 0

    def is_initialized(self):
        return self.initialized

    def init(self, **options):
        self.inits.append(options)
        if self.init_error is not None:
            raise self.init_error
        self.initialized = True

    def cluster_resources(self):
        return self.resources

    def put(self, value):
        self.put_values.append(value)
        return ("ref", len(self.put_values))

    def remote(self, **options):
        self.remote_options.append(options)

        def wrap(cls):
            assert cls is cluster._Encoder
            ray, made = self, []

            class _Remote:
                @staticmethod
                def remote(files):
                    made.append(_Actor(ray, len(made), files))
                    return made[-1]

            return _Remote

        return wrap

    def get(self, pending):
        return list(pending)

    def kill(self, actor):
        self.killed.append(actor.number)

    def shutdown(self):
        self.shutdowns += 1


@pytest.fixture
def export(tmp_path) -> Path:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "encoder.json").write_text(json.dumps({"model": "tiny-model", "dimension": "3"}), encoding="utf-8")
    (folder / "model.onnx").write_bytes(b"onnx bytes")
    (folder / "tokenizer.json").write_bytes(b"tokenizer bytes")
    (folder / "unrelated.txt").write_bytes(b"not shipped")
    return folder


def _with_ray(monkeypatch, ray) -> _FakeRay:
    monkeypatch.setitem(sys.modules, "ray", ray)
    return ray


def test_without_ray_installed_the_option_says_which_extra_to_install(monkeypatch, export):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray: ImportError
    with pytest.raises(SemsearchError) as raised:
        cluster.RayEmbedder(export, cluster.LOCAL)
    assert str(raised.value) == "--ray needs Ray: pip install 'semsearch[ray]'"
    assert raised.value.__suppress_context__


def test_local_starts_ray_on_this_machine_with_one_worker_per_core_and_ships_the_three_export_files(
    monkeypatch, export
):
    ray = _with_ray(monkeypatch, _FakeRay(resources={"CPU": 3.0}))
    monkeypatch.setattr(cluster.os, "cpu_count", lambda: 5)
    embedder = cluster.RayEmbedder(export, "local")
    assert ray.inits == [
        {"num_cpus": 5, "include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    ]
    assert (embedder.model_name, embedder.dimension, embedder.normalized) == ("tiny-model", 3, True)
    assert ray.put_values == [
        {"encoder.json": (export / "encoder.json").read_bytes(), "model.onnx": b"onnx bytes",
         "tokenizer.json": b"tokenizer bytes"}
    ]  # fmt: skip
    assert ray.remote_options == [{"num_cpus": 1}]
    assert [(actor.number, actor.files) for actor in embedder.actors] == [(n, ("ref", 1)) for n in range(3)]


def test_workers_given_caps_the_local_cores_and_the_actors(monkeypatch, export):
    ray = _with_ray(monkeypatch, _FakeRay(resources={"CPU": 8.0}))
    embedder = cluster.RayEmbedder(export, cluster.LOCAL, workers=2)
    assert ray.inits[0]["num_cpus"] == 2 and len(embedder.actors) == 2


@pytest.mark.parametrize("resources, actors", [({"CPU": 4.0}, 4), ({}, 1), ({"CPU": 0.0}, 1), ({"CPU": 2.5}, 2)])
def test_a_cluster_address_is_joined_and_gets_one_actor_per_cpu_at_least_one(monkeypatch, export, resources, actors):
    ray = _with_ray(monkeypatch, _FakeRay(resources=resources))
    embedder = cluster.RayEmbedder(export, "ray://head:10001")
    assert ray.inits == [
        {"address": "ray://head:10001", "include_dashboard": False, "log_to_driver": False,
         "logging_level": logging.ERROR}
    ]  # fmt: skip
    assert len(embedder.actors) == actors


@pytest.mark.parametrize(
    "error, said",
    [
        (ConnectionError("refused"), "cannot reach the Ray cluster at 'ray://head:10001': refused"),
        (ValueError("bad address"), "cannot reach the Ray cluster at 'ray://head:10001': bad address"),
        (RuntimeError("timed out"), "cannot reach the Ray cluster at 'ray://head:10001': timed out"),
        (
            RuntimeError('Ray Client requires pip package `ray[client]`. Run pip install "ray[client]"'),
            "--ray ray://head:10001 needs Ray's client: pip install 'semsearch[ray]'",
        ),
    ],
    ids=["refused", "value", "runtime", "no-client"],
)
def test_a_cluster_that_cannot_be_reached_is_one_line_naming_the_address(monkeypatch, export, error, said):
    _with_ray(monkeypatch, _FakeRay(init_error=error))
    with pytest.raises(SemsearchError) as raised:
        cluster.RayEmbedder(export, "ray://head:10001")
    assert str(raised.value) == said and raised.value.__suppress_context__


def test_another_failure_of_ray_init_is_not_taken_for_the_network(monkeypatch, export):
    _with_ray(monkeypatch, _FakeRay(init_error=KeyError("bug")))
    with pytest.raises(KeyError):
        cluster.RayEmbedder(export, "ray://head:10001")


def test_texts_go_out_in_chunks_of_32_round_robin_and_come_back_in_order_as_float32(monkeypatch, export):
    ray = _with_ray(monkeypatch, _FakeRay(resources={"CPU": 3.0}))
    embedder = cluster.RayEmbedder(export, "ray://head:10001")
    texts = ["x" * (i % 7 + 1) for i in range(100)]  # chunks of 32, 32, 32, 4
    vectors = embedder.encode(texts)
    assert [(worker, len(chunk)) for worker, chunk in ray.sent] == [(0, 32), (1, 32), (2, 32), (0, 4)]
    assert [text for _, chunk in ray.sent for text in chunk] == texts
    assert vectors.dtype == np.float32 and vectors.shape == (100, 2)
    assert vectors[:, 0].tolist() == [len(text) for text in texts]
    assert vectors[:, 1].tolist() == [0] * 32 + [1] * 32 + [2] * 32 + [0] * 4


def test_no_texts_is_no_rows_of_the_models_dimension_and_no_task(monkeypatch, export):
    ray = _with_ray(monkeypatch, _FakeRay(resources={"CPU": 2.0}))
    empty = cluster.RayEmbedder(export, "ray://head:10001").encode([])
    assert empty.shape == (0, 3) and empty.dtype == np.float32 and ray.sent == []


def test_close_stops_every_worker_and_the_ray_it_started(monkeypatch, export):
    ray = _with_ray(monkeypatch, _FakeRay(resources={"CPU": 2.0}))
    embedder = cluster.RayEmbedder(export, cluster.LOCAL)
    embedder.close()
    assert (ray.killed, embedder.actors, ray.shutdowns) == ([0, 1], [], 1)


def test_a_ray_already_running_in_this_process_is_used_as_it_is_and_left_running(monkeypatch, export):
    ray = _with_ray(monkeypatch, _FakeRay(initialized=True, resources={"CPU": 2.0}))
    embedder = cluster.RayEmbedder(export, "ray://elsewhere:10001")
    embedder.close()
    assert (ray.inits, ray.killed, ray.shutdowns) == ([], [0, 1], 0)


def test_a_worker_encodes_as_the_onnx_export_does_and_leaves_no_copy_of_it_behind(tmp_path):
    from semsearch.embeddings import OnnxEmbedder
    from tests.test_embeddings import tiny_export

    folder = tiny_export(tmp_path / "tiny")
    files = {name: (folder / name).read_bytes() for name in cluster.EXPORT_FILES}
    before = set(Path(tempfile.gettempdir()).glob("semsearch-encoder-*"))
    worker = cluster._Encoder(files)
    assert set(Path(tempfile.gettempdir()).glob("semsearch-encoder-*")) == before
    texts = ["a b", "c", "a a a d"]
    np.testing.assert_allclose(worker.encode(texts), OnnxEmbedder(folder).encode(texts), rtol=1e-6)
    assert worker.embedder.model_name == "tiny"
    assert worker.embedder.session.get_session_options().intra_op_num_threads == 1  # one core per worker
