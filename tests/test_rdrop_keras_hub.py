"""RDropModel wrapping a keras-hub task model built from config (no downloads)."""

import keras
import numpy as np
import pytest

from keras_dropouts.models import RDropModel

keras_hub = pytest.importorskip("keras_hub")


def test_wrap_bert_text_classifier_trains_and_saves(tmp_path):
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=8, dropout=0.2,
    )
    task = keras_hub.models.BertTextClassifier(backbone, num_classes=3, preprocessor=None, dropout=0.2)
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(1, 50, size=(16, 8)).astype("int32"),
        "segment_ids": np.zeros((16, 8), "int32"),
        "padding_mask": np.ones((16, 8), "int32"),
    }
    y = rng.integers(0, 3, size=(16,))
    model = RDropModel.from_model(task, alpha=0.5)
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["consistency_loss"] > 0
    pred = keras.ops.convert_to_numpy(model(x, training=False))
    assert pred.shape == (16, 3)
    path = str(tmp_path / "bert_rdrop.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, RDropModel) and loaded.alpha == 0.5
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)), pred, rtol=1e-5, atol=1e-6)
