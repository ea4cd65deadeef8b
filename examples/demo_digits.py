"""`make demo`: every technique in keras-dropouts on real handwritten digits.

Trains the same small CNN several times (different seeds) on scikit-learn's digits
(1,797 real 8x8 scans shipped with scikit-learn: no download), once per method:

    none           no dropout
    dropout        keras.layers.Dropout(0.2) after each conv stage
    dropblock      DropBlock2D(0.15, block 3) after each conv stage, linear ramp 0 -> 0.15
    probdropblock  ProbDropBlock2D(0.15, block 3), same places, same ramp
    rdrop          the `dropout` model wrapped by RDropModel.from_model(alpha=1.0)
    early          ScheduledDropout under EarlyDropout(0.2, linear, first ~1/6 of training)
    late           ScheduledDropout(0) under LateDropout(0.2, from ~1/6 of training on)

The 8x8 images are upsampled to 16x16 (bilinear) so that a 3x3 block is a part of a
stroke, not a third of the digit. The train/test split is fixed (stratified, 50/50);
the seed changes initialisation, dropout noise and batch order.

Outputs (default `out/`): `demo_digits.png` (DropBlock vs ProbDropBlock masks on a real
digit, the rate schedules as read back from the layers, learning curves),
`results.md` (the table and the verdicts; the README's results section is this file,
see `examples/update_readme.py`), `results.json` (raw numbers).

Usage:
    python examples/demo_digits.py                       # defaults: 3 seeds, 12 epochs
    python examples/demo_digits.py --seeds 5 --epochs 30 --backend tensorflow
    python examples/demo_digits.py --update-readme       # run, then refresh README.md
"""

import argparse
import json
import os
import platform
import sys
import time

METHODS = ("none", "dropout", "dropblock", "probdropblock", "rdrop", "early", "late")
LABELS = {
    "none": "no dropout",
    "dropout": "Dropout",
    "dropblock": "DropBlock2D + ramp",
    "probdropblock": "ProbDropBlock2D + ramp",
    "rdrop": "R-Drop (Dropout + RDropModel)",
    "early": "early dropout (EarlyDropout)",
    "late": "late dropout (LateDropout)",
}
# Fastest backend for this workload on a 2-core CPU (measured, see README); the
# KERAS_BACKEND environment variable or --backend overrides it.
DEFAULT_BACKEND = "tensorflow"

DROPOUT_RATE = 0.2
BLOCK_RATE = 0.15
BLOCK_SIZE = 3
RDROP_ALPHA = 1.0
BATCH_SIZE = 64
EVAL_BATCH_SIZE = 300


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="runs per method (default 3)")
    p.add_argument("--epochs", type=int, default=12, help="epochs per run (default 12)")
    p.add_argument(
        "--backend",
        choices=("jax", "tensorflow", "torch"),
        default=os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND,
        help=f"Keras backend (default: $KERAS_BACKEND, else {DEFAULT_BACKEND})",
    )
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    p.add_argument("--out", default="out", help="output directory (default out/)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test mode: 300 training images, fewer mask draws (not for results)",
    )
    p.add_argument(
        "--update-readme",
        action="store_true",
        help="after the run, copy results.md into README.md between the results markers",
    )
    p.add_argument("--readme", default="README.md", help="README to update (--update-readme)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        p.error(f"unknown methods {unknown}; choose from {list(METHODS)}")
    if args.seeds < 1 or args.epochs < 1:
        p.error("--seeds and --epochs must be >= 1")
    return args


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    # Must happen before keras is imported anywhere.
    os.environ["KERAS_BACKEND"] = ARGS.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_dropouts as kd  # noqa: E402


# --------------------------------------------------------------------------- data


def load_data(quick=False):
    """Digits as (N, 16, 16, 1) float32 in [0, 1]; fixed stratified 50/50 split."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype("float32") / 16.0
    images = np.clip(zoom(images, (1, 2, 2), order=1), 0.0, 1.0)[..., None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target.astype("int32"), test_size=0.5, stratify=digits.target,
        random_state=0,
    )
    if quick:
        x_train, y_train = x_train[:300], y_train[:300]
        x_test, y_test = x_test[:300], y_test[:300]
    return x_train, y_train, x_test, y_test


# --------------------------------------------------------------------------- models


def regulariser(method, stage):
    """The layer placed after conv stage `stage` (0: 16x16 maps, 1: 8x8 maps)."""
    name = f"reg{stage}"
    if method in ("dropout", "rdrop"):
        return keras.layers.Dropout(DROPOUT_RATE, name=name)
    if method == "dropblock":
        return kd.layers.DropBlock2D(0.0, BLOCK_SIZE, name=name)  # the ramp sets the rate
    if method == "probdropblock":
        return kd.layers.ProbDropBlock2D(0.0, BLOCK_SIZE, name=name)
    if method == "early":
        return kd.layers.ScheduledDropout(DROPOUT_RATE, name=name)
    if method == "late":
        return kd.layers.ScheduledDropout(0.0, name=name)  # LateDropout switches it on
    return None


def build_model(method):
    layers = [keras.Input((16, 16, 1))]
    for stage, filters in enumerate((16, 32)):
        layers.append(keras.layers.Conv2D(filters, 3, padding="same", activation="relu"))
        reg = regulariser(method, stage)
        if reg is not None:
            layers.append(reg)
        layers.append(keras.layers.MaxPooling2D(2))
    layers += [keras.layers.Flatten(), keras.layers.Dense(10)]
    model = keras.Sequential(layers, name=f"cnn_{method}")
    if method == "rdrop":
        model = kd.models.RDropModel.from_model(model, alpha=RDROP_ALPHA)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def schedule_callbacks(method, epochs):
    """The package callbacks each method uses (Liu et al.'s cutoff: 50 of 300 epochs)."""
    cutoff = max(1, round(epochs / 6))
    if method in ("dropblock", "probdropblock"):
        # Ghiasi et al.: linear ramp from 0 to the target over all of training.
        return [kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(BLOCK_RATE))]
    if method == "early":
        return [kd.callbacks.EarlyDropout(DROPOUT_RATE, cutoff_epoch=cutoff, mode="linear")]
    if method == "late":
        return [kd.callbacks.LateDropout(DROPOUT_RATE, start_epoch=cutoff)]
    return []


class RateRecorder(keras.callbacks.Callback):
    """Reads the rate back from the model's first rate-bearing layer at every step."""

    def __init__(self, layer_name="reg0"):
        super().__init__()
        self.layer_name = layer_name
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        # The rate this step used: schedules are evaluated inside the train step.
        model = self.model  # syncs JAX state
        layer = _find_layer(model, self.layer_name)
        self.rates.append(float(layer.rate) if layer is not None else 0.0)


def _find_layer(model, name):
    try:
        return kd.callbacks.select_layers(model, name)[0]
    except ValueError:  # no dropout layer of that name
        return None


class Progress(keras.callbacks.Callback):
    def __init__(self, bar, label):
        super().__init__()
        self.bar = bar
        self.label = label

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.set_postfix_str(
                f"{self.label} ep{epoch + 1} val_acc={logs.get('val_accuracy', 0):.3f}"
            )
            self.bar.update(1)


def run_one(method, seed, data, epochs, bar):
    x_train, y_train, x_test, y_test = data
    keras.utils.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_model(method)
    recorder = RateRecorder()
    callbacks = schedule_callbacks(method, epochs) + [recorder, Progress(bar, f"{method} s{seed}")]
    t0 = time.perf_counter()
    history = model.fit(
        x_train, y_train, batch_size=BATCH_SIZE, epochs=epochs, verbose=0,
        validation_data=(x_test, y_test), validation_batch_size=EVAL_BATCH_SIZE,
        callbacks=callbacks,
    )
    # Test accuracy = the validation pass after the last epoch (same weights; the test
    # set is never used for any choice). Training loss without dropout ("eval mode"),
    # with the already compiled test function:
    clean_train_loss, _ = model.evaluate(x_train, y_train, batch_size=EVAL_BATCH_SIZE, verbose=0)
    return {
        "method": method,
        "seed": seed,
        "test_accuracy": float(history.history["val_accuracy"][-1]),
        "test_loss": float(history.history["val_loss"][-1]),
        "train_loss": float(history.history["loss"][-1]),
        "clean_train_loss": float(clean_train_loss),
        "curve_loss": [float(v) for v in history.history["loss"]],
        "curve_val_accuracy": [float(v) for v in history.history["val_accuracy"]],
        "rates": recorder.rates,
        "seconds": time.perf_counter() - t0,
    }


# --------------------------------------------------------------------------- masks


def mask_study(image, draws, rate=0.25, block=BLOCK_SIZE):
    """DropBlock vs ProbDropBlock drop masks on one real digit.

    The digit is channel 0; channel 1 is a constant 1e-3 "probe" whose output is 0
    exactly where the (shared, `per_channel=False`) mask dropped, including on the
    background. The probe barely changes ProbDropBlock's salience (channel mean).
    """
    x = np.stack([image[..., 0], np.full_like(image[..., 0], 1e-3)], axis=-1)
    batch = np.repeat(x[None], draws, axis=0)
    out = {}
    ops = (("DropBlock2D", kd.ops.drop_block), ("ProbDropBlock2D", kd.ops.prob_drop_block))
    for name, fn in ops:
        y = fn(batch, rate, block, seed=1234, data_format="channels_last", per_channel=False)
        dropped = keras.ops.convert_to_numpy(y)[..., 1] == 0
        ink = image[..., 0] > 0.25
        out[name] = {
            "samples": dropped[:3],
            "frequency": dropped.mean(axis=0),
            "drop_rate": float(dropped.mean()),
            "ink_drop_rate": float(dropped[:, ink].mean()),
            "background_drop_rate": float(dropped[:, ~ink].mean()),
        }
    return out


# --------------------------------------------------------------------------- stats


def summarise(runs, methods):
    table = {}
    for m in methods:
        rs = [r for r in runs if r["method"] == m]
        if not rs:
            continue
        acc = np.array([r["test_accuracy"] for r in rs])
        loss = np.array([r["train_loss"] for r in rs])
        clean = np.array([r["clean_train_loss"] for r in rs])
        table[m] = {
            "n": len(rs),
            "acc_mean": float(acc.mean()),
            "acc_std": float(acc.std(ddof=1)) if len(rs) > 1 else 0.0,
            "loss_mean": float(loss.mean()),
            "loss_std": float(loss.std(ddof=1)) if len(rs) > 1 else 0.0,
            "clean_mean": float(clean.mean()),
            "clean_std": float(clean.std(ddof=1)) if len(rs) > 1 else 0.0,
            "seconds": float(sum(r["seconds"] for r in rs)),
        }
    return table


def compare(table, a, b, key, higher_is_better=True):
    """Verdict for 'a beats b on key', with a 2-standard-error threshold."""
    if a not in table or b not in table:
        return None
    ta, tb = table[a], table[b]
    diff = ta[f"{key}_mean"] - tb[f"{key}_mean"]
    if ta["n"] < 2 or tb["n"] < 2:
        return diff, float("nan"), "not testable (one seed)"
    se = float(np.sqrt(ta[f"{key}_std"] ** 2 / ta["n"] + tb[f"{key}_std"] ** 2 / tb["n"]))
    signed = diff if higher_is_better else -diff
    if se == 0.0:
        se = 1e-12
    if signed > 2 * se:
        verdict = "**reproduced**"
    elif signed < -2 * se:
        verdict = "**not reproduced** (opposite, beyond 2 SE)"
    elif signed > 0:
        verdict = "not resolved (right direction, within 2 SE)"
    else:
        verdict = "not reproduced (wrong direction, within 2 SE)"
    return diff, se, verdict


CLAIMS = [
    ("Dropout improves test accuracy over no dropout (Srivastava et al. 2014)",
     "dropout", "none", "acc", True),
    ("DropBlock beats Dropout on conv feature maps (Ghiasi et al. 2018)",
     "dropblock", "dropout", "acc", True),
    ("DropBlock improves test accuracy over no dropout (Ghiasi et al. 2018)",
     "dropblock", "none", "acc", True),
    ("ProbDropBlock beats DropBlock (Zhao et al. 2023)",
     "probdropblock", "dropblock", "acc", True),
    ("R-Drop beats the same model with plain Dropout (Liang et al. 2021)",
     "rdrop", "dropout", "acc", True),
    ("Early dropout ends with a lower training loss than no dropout (Liu et al. 2023)",
     "early", "none", "clean", False),
    ("Early dropout improves test accuracy over no dropout (Liu et al. 2023)",
     "early", "none", "acc", True),
    ("Late dropout improves test accuracy over no dropout (Liu et al. 2023)",
     "late", "none", "acc", True),
]


def check_mechanics(runs, masks, epochs, steps_per_epoch):
    """Implementation-level checks: the schedules and masks do what the papers say."""
    rows = []
    first = {r["method"]: r for r in runs if r["seed"] == runs[0]["seed"]}
    total = epochs * steps_per_epoch
    cutoff = max(1, round(epochs / 6)) * steps_per_epoch
    for m in ("dropblock", "probdropblock"):
        if m in first:
            rates = first[m]["rates"]
            ok = abs(rates[0]) < 1e-6 and abs(rates[-1] - BLOCK_RATE * (total - 1) / total) < 1e-3
            rows.append((f"{LABELS[m]}: rate read back from the layer ramps 0 -> {BLOCK_RATE} "
                         f"(first step {rates[0]:.3f}, last step {rates[-1]:.3f})", ok))
    if "early" in first:
        r = first["early"]["rates"]
        ok = abs(r[0] - DROPOUT_RATE) < 1e-6 and all(v == 0 for v in r[cutoff:])
        rows.append((f"Early dropout: rate {r[0]:.2f} at step 0, linear decay, 0 from step "
                     f"{cutoff} on", ok))
    if "late" in first:
        r = first["late"]["rates"]
        ok = all(v == 0 for v in r[:cutoff]) and all(
            abs(v - DROPOUT_RATE) < 1e-6 for v in r[cutoff:])
        rows.append((f"Late dropout: rate 0 before step {cutoff}, {DROPOUT_RATE} after", ok))
    db, pdb = masks["DropBlock2D"], masks["ProbDropBlock2D"]
    ok = abs(db["drop_rate"] - 0.25) < 0.05
    rows.append((f"DropBlock2D drops the requested fraction on a 16x16 digit "
                 f"(rate 0.25 -> measured {db['drop_rate']:.3f})", ok))
    ok = (pdb["ink_drop_rate"] > db["ink_drop_rate"]
          and pdb["background_drop_rate"] < db["background_drop_rate"])
    rows.append((f"ProbDropBlock2D drops the salient strokes more than DropBlock2D "
                 f"(ink dropped {pdb['ink_drop_rate']:.3f} vs {db['ink_drop_rate']:.3f}; "
                 f"background {pdb['background_drop_rate']:.3f} vs "
                 f"{db['background_drop_rate']:.3f})", ok))
    return rows


# --------------------------------------------------------------------------- report


def write_markdown(path, table, runs, masks, meta, mechanics):
    lines = []
    add = lines.append
    add(f"Regenerate with `{meta['command']}` "
        f"(then `python examples/update_readme.py` to refresh this section).")
    add("")
    add(f"Digits (scikit-learn, 8x8 upsampled to 16x16), {meta['n_train']} train / "
        f"{meta['n_test']} test images, small CNN ({meta['params']:,} parameters), "
        f"{meta['seeds']} seeds x {meta['epochs']} epochs per method, backend "
        f"`{meta['backend']}`, Keras {meta['keras']}, {meta['cpus']} CPU cores, "
        f"wall time {meta['wall']:.0f} s.")
    add("")
    add("| method | test accuracy (mean ± std) | final train loss (fit log) | "
        "train loss, eval mode | seconds |")
    add("|---|---|---|---|---|")
    for m, t in table.items():
        add(f"| {LABELS[m]} | {t['acc_mean']:.4f} ± {t['acc_std']:.4f} | "
            f"{t['loss_mean']:.4f} ± {t['loss_std']:.4f} | "
            f"{t['clean_mean']:.4f} ± {t['clean_std']:.4f} | {t['seconds']:.0f} |")
    add("")
    add("Claims from the papers, at this small scale. Verdict rule: the difference of the "
        "means must exceed 2 standard errors (SE = sqrt(sa²/na + sb²/nb)) in the claimed "
        "direction to count as reproduced.")
    add("")
    add("| claim | difference | 2 SE | verdict |")
    add("|---|---|---|---|")
    for text, a, b, key, hib in CLAIMS:
        res = compare(table, a, b, key, hib)
        if res is None:
            continue
        diff, se, verdict = res
        what = "accuracy" if key == "acc" else "train loss"
        add(f"| {text} | {what} {diff:+.4f} | {2 * se:.4f} | {verdict} |")
    add("")
    add("Implementation checks (these must always hold; measured in the same run):")
    add("")
    for text, ok in mechanics:
        add(f"- {'✅' if ok else '❌'} {text}")
    add("")
    n_rep = sum(
        1 for text, a, b, k, h in CLAIMS
        if (r := compare(table, a, b, k, h)) is not None and r[2] == "**reproduced**"
    )
    n_all = sum(1 for _, a, b, _, _ in CLAIMS if a in table and b in table)
    add(f"In plain words: {n_rep} of {n_all} accuracy/loss claims reproduced on this tiny task "
        "with a short schedule (the learning curves show whether the models still underfit); "
        "the others are within seed noise or go the other way. "
        "The papers' gains were measured on ImageNet, GLUE and long schedules; a 16x16 digit "
        "CNN trained for a few epochs is a demonstration that the techniques run and behave "
        "as specified (the implementation checks above), not a replication of the "
        "benchmarks.")
    add("")
    add(f"![DropBlock vs ProbDropBlock masks, rate schedules, learning curves]"
        f"({meta['figure_rel']})")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return "\n".join(lines)


def make_figure(path, image, masks, runs, methods, epochs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 9.5))
    grid = fig.add_gridspec(3, 6, height_ratios=[1, 1, 1.5], hspace=0.45, wspace=0.3)
    for row, name in enumerate(("DropBlock2D", "ProbDropBlock2D")):
        mk = masks[name]
        ax = fig.add_subplot(grid[row, 0])
        ax.imshow(image[..., 0], cmap="gray_r" if row == 0 else "magma")
        ax.set_title("digit (16x16)" if row == 0 else "salience |x|", fontsize=9)
        for i in range(3):
            ax = fig.add_subplot(grid[row, 1 + i])
            rgb = np.stack([1 - image[..., 0]] * 3, axis=-1)
            rgb[mk["samples"][i]] = rgb[mk["samples"][i]] * 0.35 + np.array([0.65, 0, 0])
            ax.imshow(rgb)
            ax.set_title(f"{name} draw {i + 1}", fontsize=9)
        ax = fig.add_subplot(grid[row, 4:6])
        im = ax.imshow(mk["frequency"], cmap="magma", vmin=0, vmax=max(
            masks["DropBlock2D"]["frequency"].max(), masks["ProbDropBlock2D"]["frequency"].max()))
        ax.set_title(f"{name}: P(dropped), ink {mk['ink_drop_rate']:.2f} / "
                     f"background {mk['background_drop_rate']:.2f}", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    for ax in fig.axes:
        if ax.images:
            ax.set_xticks([])
            ax.set_yticks([])

    colors = dict(zip(METHODS, plt.cm.tab10.colors))
    first_seed = runs[0]["seed"]
    ax = fig.add_subplot(grid[2, 0:2])
    for m in methods:
        r = next((r for r in runs if r["method"] == m and r["seed"] == first_seed), None)
        if r is not None and any(r["rates"]):
            ax.plot(r["rates"], label=LABELS[m], color=colors[m])
        elif r is not None and m in ("dropout", "rdrop"):
            style = "--" if m == "dropout" else ":"
            ax.plot([0, len(r["rates"]) - 1], [DROPOUT_RATE] * 2, style, color=colors[m], lw=2,
                    label=f"{LABELS[m]} (fixed)")
    ax.set_title("drop rate read back from the layer, per step", fontsize=10)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("rate")
    ax.legend(fontsize=7)
    for col, (key, title) in enumerate(
        (("curve_val_accuracy", "test accuracy (mean over seeds)"),
         ("curve_loss", "training loss (fit log, mean over seeds)"))
    ):
        ax = fig.add_subplot(grid[2, 2 + 2 * col: 4 + 2 * col])
        for m in methods:
            curves = np.array([r[key] for r in runs if r["method"] == m])
            if len(curves):
                ax.plot(np.arange(1, epochs + 1), curves.mean(0), label=LABELS[m], color=colors[m])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        if key == "curve_val_accuracy":
            lo = min(np.mean([r[key][-1] for r in runs if r["method"] == m]) for m in methods)
            ax.set_ylim(max(0.0, lo - 0.1), 1.0)
        else:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.suptitle(
        "keras-dropouts on scikit-learn digits: masks, schedules, learning curves", fontsize=12)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# --------------------------------------------------------------------------- main


def main(args):
    from tqdm import tqdm

    t_start = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    data = load_data(args.quick)
    x_train, y_train, x_test, y_test = data
    steps_per_epoch = -(-len(x_train) // BATCH_SIZE)

    # A clear, well-inked test digit for the mask figure.
    image = x_test[int(np.argmax((x_test > 0.5).mean(axis=(1, 2, 3)) * (y_test == 8)))]
    masks = mask_study(image, draws=200 if args.quick else 2000)

    seeds = list(range(args.seeds))
    runs = []
    bar = tqdm(
        total=len(args.methods) * len(seeds) * args.epochs, unit="epoch",
        disable=args.no_progress, dynamic_ncols=True, desc=f"demo [{args.backend}]",
    )
    for seed in seeds:
        for m in args.methods:
            runs.append(run_one(m, seed, data, args.epochs, bar))
    bar.close()

    table = summarise(runs, args.methods)
    mechanics = check_mechanics(runs, masks, args.epochs, steps_per_epoch)
    figure = os.path.join(args.out, "demo_digits.png")
    make_figure(figure, image, masks, runs, args.methods, args.epochs)
    wall = time.perf_counter() - t_start

    cmd = "make demo" if (args.seeds, args.epochs, args.quick) == (3, 12, False) else (
        f"python examples/demo_digits.py --seeds {args.seeds} --epochs {args.epochs}"
        + (" --quick" if args.quick else ""))
    meta = {
        "command": cmd + ("" if args.backend == DEFAULT_BACKEND else f" --backend {args.backend}"),
        "backend": args.backend,
        "keras": keras.__version__,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "seeds": args.seeds,
        "epochs": args.epochs,
        "n_train": len(x_train),
        "n_test": len(x_test),
        "params": build_model("none").count_params(),
        "wall": wall,
        "figure_rel": os.path.relpath(figure, os.path.dirname(os.path.abspath(args.readme)))
        if not os.path.isabs(args.out) else figure,
    }
    md = write_markdown(os.path.join(args.out, "results.md"), table, runs, masks, meta, mechanics)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "table": table, "runs": runs,
                   "masks": {k: {kk: vv for kk, vv in v.items() if not hasattr(vv, "shape")}
                             for k, v in masks.items()},
                   "mechanics": mechanics}, f, indent=1)

    print()
    print(f"{'method':32s} {'test acc':>17s} {'train loss':>17s} {'clean loss':>17s}")
    for m, t in table.items():
        print(f"{LABELS[m]:32s} {t['acc_mean']:.4f} ± {t['acc_std']:.4f}  "
              f"{t['loss_mean']:.4f} ± {t['loss_std']:.4f}  "
              f"{t['clean_mean']:.4f} ± {t['clean_std']:.4f}")
    print(f"\nseeds={args.seeds} epochs={args.epochs} backend={args.backend} "
          f"wall time {wall:.1f} s")
    print("\n" + md)
    print(f"wrote {figure}, {os.path.join(args.out, 'results.md')}, "
          f"{os.path.join(args.out, 'results.json')}")
    if args.update_readme:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from update_readme import update_readme

        update_readme(args.readme, os.path.join(args.out, "results.md"))
        print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
