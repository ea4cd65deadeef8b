"""BERT text classifier + R-Drop + ProbDropBlock1D on padded token sequences.

The Zhao et al. (ACML 2023) RoBERTa setting, scaled down: ProbDropBlock over the
token axis (block 4) on the hidden states of a transformer encoder, the rate ramped
linearly from 0 to 0.1 over all updates, padding never dropped or counted as salient.
On top, R-Drop (Liang et al. 2021; alpha in 0.1-1.0 on GLUE) makes two dropout passes
agree.

- The model is keras-hub's `BertTextClassifier` built from a tiny config (no preset,
  nothing downloaded). Its backbone is rebuilt from the `BertBackbone`'s own layers
  with a `ProbDropBlock1D` after the embeddings and after every encoder layer but
  the last, fed the backbone's `padding_mask`.
- `RDropModel.from_model(classifier, alpha=...)` wraps the keras-hub task.
- `DropoutScheduler(schedules.LinearRamp(0.1))` ramps every ProbDropBlock1D.

Data:
- `--data-dir DIR`: a GLUE SST-2 folder you downloaded (`train.tsv`, `dev.tsv`, with a
  `sentence<TAB>label` header). Words are lower-cased and indexed from the training
  file (a tiny stand-in for a WordPiece vocabulary).
- Without it: a synthetic sentiment-like task. Each sequence has a random length
  (6 to max_len - 2) of tokens drawn from 96 "words"; words 4-51 are "positive",
  52-99 "negative"; the label is 1 when positive words outnumber negative ones
  (ties are re-drawn). Sequences are `[CLS] words [SEP]` then padding (id 0).

    python examples/bert_rdrop_probdropblock.py                 # synthetic, ~1 min
    python examples/bert_rdrop_probdropblock.py --data-dir ~/glue/SST-2 --epochs 3
"""

import argparse
import collections
import csv
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

import keras_dropouts as kd  # noqa: E402

PAD, CLS, SEP, UNK = 0, 1, 2, 3


# --------------------------------------------------------------------------- data


def synthetic_task(n, max_len, rng):
    ids = np.zeros((n, max_len), "int32")
    labels = np.zeros((n,), "int32")
    for i in range(n):
        while True:
            length = int(rng.integers(6, max_len - 1))
            words = rng.integers(4, 100, size=length)
            pos, neg = int((words < 52).sum()), int((words >= 52).sum())
            if pos != neg:
                break
        ids[i, 0], ids[i, 1 : length + 1], ids[i, length + 1] = CLS, words, SEP
        labels[i] = int(pos > neg)
    return ids, labels, 100


def _read_tsv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["sentence"] for r in rows], np.array([int(r["label"]) for r in rows], "int32")


def _tokens(text):
    return re.findall(r"[a-z0-9']+|[^\sa-z0-9']", text.lower())


def sst2_task(data_dir, max_len, vocab_size, max_examples):
    train_x, train_y = _read_tsv(os.path.join(data_dir, "train.tsv"))
    dev_x, dev_y = _read_tsv(os.path.join(data_dir, "dev.tsv"))
    if max_examples:
        train_x, train_y = train_x[:max_examples], train_y[:max_examples]
    counts = collections.Counter(t for s in train_x for t in _tokens(s))
    vocab = {w: i + 4 for i, (w, _) in enumerate(counts.most_common(vocab_size - 4))}

    def encode(sentences):
        ids = np.zeros((len(sentences), max_len), "int32")
        for i, s in enumerate(sentences):
            toks = [vocab.get(t, UNK) for t in _tokens(s)][: max_len - 2]
            ids[i, : len(toks) + 2] = [CLS, *toks, SEP]
        return ids

    return (encode(train_x), train_y), (encode(dev_x), dev_y), len(vocab) + 4


def as_inputs(ids):
    return {
        "token_ids": ids,
        "segment_ids": np.zeros_like(ids),
        "padding_mask": (ids != PAD).astype("int32"),
    }


# --------------------------------------------------------------------------- model


def probdropblock_backbone(backbone, block_size=4):
    """The BertBackbone's graph with ProbDropBlock1D on the token axis (shared weights)."""
    inputs = {
        "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
        "segment_ids": keras.Input((None,), dtype="int32", name="segment_ids"),
        "padding_mask": keras.Input((None,), dtype="int32", name="padding_mask"),
    }
    padding_mask = inputs["padding_mask"]
    tokens = backbone.token_embedding(inputs["token_ids"])
    x = backbone.embeddings_add(
        (tokens, backbone.position_embedding(tokens),
         backbone.segment_embedding(inputs["segment_ids"]))
    )
    x = backbone.embeddings_dropout(backbone.embeddings_layer_norm(x))
    n = len(backbone.transformer_layers)
    for i, layer in enumerate([None, *backbone.transformer_layers]):
        if layer is not None:
            x = layer(x, padding_mask=padding_mask)
        if i < n:  # after the embeddings and every encoder layer but the last
            # Rate 0 at build time: the ramp callback sets it before every step.
            x = kd.layers.ProbDropBlock1D(0.0, block_size, name=f"probdropblock_{i}")(
                x, mask=padding_mask
            )
    pooled = backbone.pooled_dense(x[:, 0, :])
    return keras.Model(
        inputs, {"sequence_output": x, "pooled_output": pooled}, name="bert_probdropblock"
    )


def build(vocab_size, max_len, args):
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocab_size,
        num_layers=args.layers,
        num_heads=2,
        hidden_dim=args.hidden,
        intermediate_dim=2 * args.hidden,
        max_sequence_length=max_len,
        dropout=0.1,
    )
    classifier = keras_hub.models.BertTextClassifier(
        backbone=probdropblock_backbone(backbone, args.block_size),
        num_classes=2,
        preprocessor=None,
        dropout=0.1,
    )
    model = kd.models.RDropModel.from_model(classifier, alpha=args.alpha)
    model.compile(
        optimizer=keras.optimizers.AdamW(args.lr, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model, classifier


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", help="GLUE SST-2 folder with train.tsv and dev.tsv")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps", type=int, default=None, help="steps per epoch (default: all)")
    p.add_argument("--examples", type=int, default=4000, help="training examples")
    p.add_argument("--max-len", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--alpha", type=float, default=1.0, help="R-Drop alpha (GLUE: 0.1-1.0)")
    p.add_argument("--rate", type=float, default=0.1, help="ProbDropBlock target rate")
    p.add_argument("--block-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    if args.data_dir:
        (x_train, y_train), (x_val, y_val), vocab = sst2_task(
            args.data_dir, args.max_len, vocab_size=8000, max_examples=args.examples
        )
    else:
        x_train, y_train, vocab = synthetic_task(args.examples, args.max_len, rng)
        x_val, y_val, _ = synthetic_task(max(200, args.examples // 4), args.max_len, rng)
    print(f"train {len(x_train)}, validation {len(x_val)}, vocabulary {vocab}, "
          f"mean padding {(x_train == PAD).mean():.0%}")

    model, classifier = build(vocab, args.max_len, args)
    ramp = kd.callbacks.DropoutScheduler(
        kd.schedules.LinearRamp(args.rate), layers=kd.layers.ProbDropBlock1D
    )
    model.fit(
        as_inputs(x_train), y_train, batch_size=args.batch_size, epochs=args.epochs,
        steps_per_epoch=args.steps, validation_data=(as_inputs(x_val), y_val),
        callbacks=[ramp], verbose=2,
    )
    _, acc = model.evaluate(as_inputs(x_val), y_val, batch_size=128, verbose=0)
    rates = [round(layer.rate, 4) for layer in ramp.targets]
    print(f"backend={keras.backend.backend()} validation accuracy={acc:.4f} "
          f"ProbDropBlock1D rates at the end of the ramp: {rates} (target {args.rate})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
