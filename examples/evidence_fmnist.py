"""The runs of plan versions 2 and 3 (docs/evidence_plan.md, docs/evidence_plan_v3.md):
Fashion-MNIST (and MNIST-1D from version 3), paired seeds.

`examples/evidence.py --profile fmnist-cpu` (what `make evidence` runs), `fmnist-gpu` or
`fmnist-smoke` comes here. The regimes, arms, sizes and recipe are read from the plan's
`json plan` block, never written here: this file only says how an arm is built and trained.

- cnn: conv-reg-pool-conv-reg-pool[-dense]-dense10; none, dropout_ramp (Dropout on the same
  linear ramp as DropBlock), dropblock, probdropblock (both ramped to the same target rate).
- fc: Srivastava et al.'s MLP; none, dropout (0.2 inputs, 0.5 hidden), rdrop (same dropout).
- resmlp: residual MLP blocks with DropPath on the branch; none, sd_standard (rates linear
  in depth), sd_late (the same rates, 0 until the cutoff).
- underfit: a tiny CNN on all training images; none, dropout (standard), early.
- seq1d (version 3): a 1D CNN on MNIST-1D; none, dropblock, probdropblock (DropBlock1D /
  ProbDropBlock1D on the same linear ramp).

Under seed s every arm of a regime starts from the same weights (seeded initialisers) and
sees the same images in the same order (one stream per regime and seed). Every run record
carries the plan's hash, its version and the commit it ran at (`evidence_plan.stamp`).
"""

import json
import os
import sys
import time

import numpy as np

REGIME_CODES = {"cnn": 1, "fc": 2, "resmlp": 3, "underfit": 4, "seq1d": 5}
# The regimes whose arms' training loss is measured for every arm (C6); elsewhere only the
# `none` arm's (K4), to spend the evaluation time on the test set.
TRAIN_LOSS_REGIMES = ("underfit",)


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------- data


def load_data(data_dir=None):
    """Fashion-MNIST as uint8 (N, 28, 28, 1) images and int32 labels (never downloads)."""
    from fashion_mnist import load_fashion_mnist

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(data_dir)
    return (x_train[..., None], y_train.astype("int32"), x_test[..., None], y_test.astype("int32"))


def subset(y, n, seed, regime):
    """Indices of a stratified random subset of `n` labels `y` (all of them if n >= len(y)),
    drawn from (seed, regime)."""
    rng = np.random.default_rng([seed, REGIME_CODES[regime], 17])
    if n >= len(y):
        return rng.permutation(len(y))
    classes = np.unique(y)
    per = np.full(len(classes), n // len(classes))
    per[: n - per.sum()] += 1
    picks = [rng.choice(np.flatnonzero(y == c), k, replace=False) for c, k in zip(classes, per)]
    return rng.permutation(np.concatenate(picks))


def regime_data(regime, seed, cfg, data):
    """Training stream (uint8, every epoch in a fresh seeded order) and evaluation sets."""
    from evidence_data import epoch_stream

    if regime == "seq1d":
        from mnist1d_data import load_mnist1d

        (x_train, y_train), (x_test, y_test) = load_mnist1d(cfg.get("seq1d_samples", 5000))
    else:
        x_train, y_train, x_test, y_test = data
    idx = subset(y_train, cfg[f"{regime}_train"], seed, regime)
    x, y = x_train[idx], y_train[idx]
    xs, ys = epoch_stream(x, y, seed, cfg[f"{regime}_epochs"], cfg.get(f"{regime}_batch", cfg["batch"]))
    n_test = min(cfg["test"], len(y_test))
    sets = {"test": (x_test[:n_test], y_test[:n_test]), "train": (x[:10000], y[:10000])}
    return len(x), xs.astype(x_train.dtype), ys, sets


# --------------------------------------------------------------------------- models


def _init(seed, k):
    import keras

    return keras.initializers.GlorotUniform(seed=1000 * seed + k)


def _inputs():
    import keras

    inputs = keras.Input((28, 28, 1), dtype="uint8")
    return inputs, keras.layers.Rescaling(1 / 255)(inputs)


def _ramped(arm, rank, noise, name, recipe):
    """The cnn / seq1d regularisers, all on the same linear ramp (built at rate 0)."""
    import keras_dropouts as kd

    if arm == "dropout_ramp":
        return kd.layers.ScheduledDropout(0.0, seed=noise, name=name)
    if arm == "dropblock":
        return getattr(kd.layers, f"DropBlock{rank}D")(0.0, recipe["block_size"], seed=noise, name=name)
    if arm == "probdropblock":
        return getattr(kd.layers, f"ProbDropBlock{rank}D")(0.0, recipe["block_size"], seed=noise, name=name)
    return None


def _conv_reg(regime, arm, stage, seed, recipe):
    """The regulariser after conv stage `stage`, or None."""
    import keras

    import keras_dropouts as kd

    name, noise = f"reg{stage}", 1000 * seed + 100 + stage
    if regime == "cnn":
        return _ramped(arm, 2, noise, name, recipe)
    if arm == "dropout":
        return keras.layers.Dropout(recipe["underfit_rate"], seed=noise, name=name)
    elif arm == "early":
        return kd.layers.ScheduledDropout(recipe["early_rate"], seed=noise, name=name)
    return None


def build_cnn(regime, arm, seed, filters, recipe, dense=0):
    """conv-reg-pool per stage, then an optional hidden Dense(`dense`, relu), then logits."""
    import keras

    inputs, h = _inputs()
    for stage, f in enumerate(filters):
        h = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv{stage}",
                                kernel_initializer=_init(seed, stage))(h)
        reg = _conv_reg(regime, arm, stage, seed, recipe)
        h = reg(h) if reg is not None else h
        h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    if dense:
        h = keras.layers.Dense(dense, activation="relu", name="hidden", kernel_initializer=_init(seed, 49))(h)
    out = keras.layers.Dense(10, name="logits", kernel_initializer=_init(seed, 50))(h)
    return keras.Model(inputs, out, name=f"{regime}_{arm}")


def build_seq1d(arm, seed, filters, recipe):
    """MNIST-1D's CNN: conv1d(k=5)-reg-pool per stage, then logits."""
    import keras

    inputs = keras.Input((40, 1))
    h = inputs
    for stage, f in enumerate(filters):
        h = keras.layers.Conv1D(f, 5, padding="same", activation="relu", name=f"conv{stage}",
                                kernel_initializer=_init(seed, 80 + stage))(h)
        reg = _ramped(arm, 1, 1000 * seed + 400 + stage, f"reg{stage}", recipe)
        h = reg(h) if reg is not None else h
        h = keras.layers.MaxPooling1D(2)(h)
    h = keras.layers.Flatten()(h)
    out = keras.layers.Dense(10, name="logits", kernel_initializer=_init(seed, 89))(h)
    return keras.Model(inputs, out, name=f"seq1d_{arm}")


def build_mlp(arm, seed, units, recipe):
    import keras

    inputs, h = _inputs()
    h = keras.layers.Flatten()(h)
    for i, n in enumerate(tuple(units) + (10,)):
        if arm in ("dropout", "rdrop"):
            rate = recipe["fc_input_rate"] if i == 0 else recipe["fc_hidden_rate"]
            h = keras.layers.Dropout(rate, seed=1000 * seed + 200 + i, name=f"drop{i}")(h)
        last = i == len(units)
        h = keras.layers.Dense(n, activation=None if last else "relu",
                               name="logits" if last else f"fc{i}",
                               kernel_initializer=_init(seed, 60 + i))(h)
    return keras.Model(inputs, h, name=f"fc_{arm}")


def build_resmlp(arm, seed, width, blocks, recipe):
    """dense(width) stem, `blocks` residual blocks h + DropPath(dense(relu(dense(h)))),
    dense10. DropPath rates linspace(0, sd_max_rate, blocks) (stochastic depth's rule)."""
    import keras

    import keras_dropouts as kd

    inputs, h = _inputs()
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(width, activation="relu", name="stem", kernel_initializer=_init(seed, 70))(h)
    rates = np.linspace(0.0, recipe["sd_max_rate"], blocks)
    for b in range(blocks):
        r = keras.layers.Dense(width, activation="relu", name=f"block{b}a",
                               kernel_initializer=_init(seed, 71 + 2 * b))(h)
        r = keras.layers.Dense(width, name=f"block{b}b", kernel_initializer=_init(seed, 72 + 2 * b))(r)
        if arm in ("sd_standard", "sd_late"):
            r = kd.layers.DropPath(float(rates[b]), seed=1000 * seed + 300 + b, name=f"drop_path{b}")(r)
        h = keras.layers.Add(name=f"res{b}")([h, r])
    out = keras.layers.Dense(10, name="logits", kernel_initializer=_init(seed, 99))(h)
    return keras.Model(inputs, out, name=f"resmlp_{arm}")


def build(regime, arm, seed, cfg, recipe):
    if regime in ("cnn", "underfit"):
        return build_cnn(regime, arm, seed, cfg[f"{regime}_filters"], recipe, cfg.get(f"{regime}_dense", 0))
    if regime == "seq1d":
        return build_seq1d(arm, seed, cfg["seq1d_filters"], recipe)
    if regime == "fc":
        return build_mlp(arm, seed, cfg["fc_units"], recipe)
    return build_resmlp(arm, seed, cfg["resmlp_width"], cfg["resmlp_blocks"], recipe)


def callbacks(regime, arm, epochs, recipe):
    """The arm's rate schedule (Ghiasi's ramp, Liu's early/late cutoffs)."""
    import keras_dropouts as kd

    cutoff = epochs * recipe["cutoff_fraction"]
    if regime in ("cnn", "seq1d") and arm != "none":
        return [kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(recipe["block_rate"]))]
    if arm == "sd_late":
        return [kd.callbacks.LateDropout(None, start_epoch=cutoff, layers=kd.layers.DropPath)]
    if arm == "early":
        return [kd.callbacks.EarlyDropout(recipe["early_rate"], cutoff_epoch=cutoff, mode="linear")]
    return []


# --------------------------------------------------------------------------- runs


def run(regime, arm, seed, cfg, recipe, data):
    """Trains one arm under one seed; returns its record (metrics, rate logs, seconds)."""
    import keras

    import keras_dropouts as kd
    from evidence import score
    from evidence_data import steps_per_epoch

    n, xs, ys, sets = data
    if arm != "none" and regime not in TRAIN_LOSS_REGIMES:
        sets = {"test": sets["test"]}
    epochs, batch = cfg[f"{regime}_epochs"], cfg.get(f"{regime}_batch", cfg["batch"])
    spe = steps_per_epoch(n, batch)
    keras.utils.clear_session()
    keras.utils.set_random_seed(seed)
    base = build(regime, arm, seed, cfg, recipe)
    model = kd.models.RDropModel.from_model(base, alpha=recipe["rdrop_alpha"]) if arm == "rdrop" else base
    lr = keras.optimizers.schedules.CosineDecay(recipe["learning_rate"], decay_steps=max(1, epochs * spe))
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=cfg.get("jit_compile", "auto"), run_eagerly=cfg.get("run_eagerly", False))
    t0 = time.perf_counter()
    history = model.fit(xs, ys, batch_size=batch, epochs=epochs, steps_per_epoch=spe, shuffle=False,
                        verbose=0, callbacks=callbacks(regime, arm, epochs, recipe))
    rec = {"regime": regime, "method": arm, "seed": seed, "seconds": time.perf_counter() - t0}
    rec.update(score(model, sets))
    rec["curve_loss"] = [float(v) for v in history.history["loss"]]
    rec["rate_logs"] = {k: [float(v) for v in vals] for k, vals in history.history.items()
                        if k.endswith("rate") and "learning" not in k}
    return rec


def same_init(cfg, plan):
    """All arms of a regime start from identical weights (checked on the first seed)."""
    import keras

    seed = cfg["first_seed"]
    for regime, spec in plan["regimes"].items():
        ref = None
        for arm in spec["arms"]:
            keras.utils.clear_session()
            keras.utils.set_random_seed(4321 + len(arm))  # the global seed must not matter
            w = [keras.ops.convert_to_numpy(v) for v in build(regime, arm, seed, cfg, plan["recipe"]).trainable_weights]
            if ref is None:
                ref = w
            elif len(w) != len(ref) or not all(np.array_equal(a, b) for a, b in zip(ref, w)):
                return False
    return True


def read_runs(out):
    runs = []
    for name in sorted(os.listdir(out)) if os.path.isdir(out) else ():
        if name.startswith("runs") and name.endswith(".jsonl"):
            with open(os.path.join(out, name)) as f:
                runs += [json.loads(line) for line in f if line.strip()]
    return runs


def saved_runs(args, plan):
    """`--report-only`: the runs and meta of the committed raw file
    `<docs>/<prefix>_runs.json.gz` (no training)."""
    from evidence_fmnist_report import load_raw

    runs, meta = load_raw(args.docs, plan, args.profile)
    return runs, dict(meta, trained=False)


def train(args, plan, shard=(0, 1)):
    """Runs this shard's seeds of every regime in `args.regimes`; appends to its jsonl."""
    import keras

    import evidence_plan as ep

    ep.start_check(plan)
    commit, clean = ep.head_commit()
    cfg = dict(plan["profiles"][args.profile], **plan["recipe"])
    if args.profile.endswith("smoke"):
        cfg.update(jit_compile=False, run_eagerly=True)
    path = os.path.join(args.out, f"runs.shard{shard[0]}.jsonl" if args.shard else "runs.jsonl")
    done = {(r["regime"], r["method"], r["seed"]) for r in read_runs(args.out)
            if r.get("plan_hash") == plan["hash"]} if args.resume else set()
    data = load_data(args.data_dir)
    log(f"evidence (plan v{plan['version']} {plan['hash']}): profile {args.profile}, backend "
        f"{args.backend}, Keras {keras.__version__}, commit {str(commit)[:12]}{'' if clean else ' (dirty)'}")
    first = cfg["first_seed"]
    for regime in (r for r in plan["regimes"] if r in args.regimes):
        for seed in range(first + shard[0], first + cfg["seeds"], shard[1]):
            todo = [a for a in plan["regimes"][regime]["arms"] if (regime, a, seed) not in done]
            if not todo:
                continue
            d = regime_data(regime, seed, cfg, data)
            for arm in todo:
                rec = dict(run(regime, arm, seed, cfg, plan["recipe"], d), profile=args.profile)
                rec = ep.stamp(rec, plan, commit, clean)
                with open(path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                log(f"  [{regime:8s} seed {seed}] {arm:13s} {rec['seconds']:6.1f} s  "
                    f"test {rec['test_acc']:.4f}")
    return cfg


def main(args):
    """Trains (in `--jobs` shard processes, or this one), then reports. Returns an exit code."""
    import subprocess

    import evidence_plan as ep
    from evidence_fmnist_report import report

    plan = ep.load_plan(ep.PLAN_PATHS[getattr(args, "plan_version", ep.CURRENT_VERSION)])
    os.makedirs(args.out, exist_ok=True)
    if not (args.resume or args.merge or args.report_only or args.shard):
        for name in os.listdir(args.out):
            if name.startswith("runs") and name.endswith(".jsonl"):
                os.remove(os.path.join(args.out, name))
    t0 = time.perf_counter()
    if args.jobs > 1 and not (args.shard or args.merge or args.report_only):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "evidence.py")
        base = [sys.executable, script, "--profile", args.profile, "--backend", args.backend,
                "--plan-version", str(plan["version"]),
                "--out", args.out, "--regimes", ",".join(args.regimes), "--resume"]
        base += ["--data-dir", args.data_dir] if args.data_dir else []
        env = dict(os.environ, EVIDENCE_ONE_THREAD="1")
        procs = [subprocess.Popen(base + ["--shard", f"{i}/{args.jobs}"], env=env) for i in range(args.jobs)]
        codes = [p.wait() for p in procs]
        if any(codes):
            log(f"evidence: shard exit codes {codes}")
            return 1
    elif not (args.merge or args.report_only):
        train(args, plan, args.shard or (0, 1))
    if args.shard:
        return 0
    if args.report_only:
        runs, meta = saved_runs(args, plan)
    else:
        import keras

        cfg = dict(plan["profiles"][args.profile], **plan["recipe"])
        runs = read_runs(args.out)
        meta = {"profile": args.profile, "backend": args.backend, "keras": keras.__version__,
                "wall_seconds": time.perf_counter() - t0, "jobs": args.jobs,
                "trained": not args.merge, "cpus": os.cpu_count(), "same_init": same_init(cfg, plan)}
    try:
        summary = report(runs, plan, meta, args)
    except ep.PlanError as e:
        log(f"evidence: refused: {e}")
        return 2
    print("\n".join(summary["stdout"]), flush=True)
    print(summary["last_line"], flush=True)
    return 0
