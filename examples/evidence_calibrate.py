"""A plan's calibration, run before the plan is committed: time per run, and the `none`
arm's regime checks (K4, K5) only.

Prints each run's training seconds and, for the `none` arm alone, its training loss (eval
mode) and test accuracy: a regularised arm's metrics are never computed here, so no claim's
or control's difference can be seen before the plan is fixed. One thread, like one shard of
`make evidence --jobs 2`. The seed (999 by default) is not one of the plan's seeds.

    python examples/evidence_calibrate.py --regimes cnn --arms none,dropblock \\
        --set cnn_epochs=20 --set cnn_dense=128
"""

import argparse
import json
import os
import sys
import time

for _var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


SEQ1D_ARMS = ("none", "dropblock", "probdropblock")  # plan version 3's new regime


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", default="fmnist-cpu", help="the plan version 2 profile to start from")
    p.add_argument("--regimes", default="cnn")
    p.add_argument("--arms", default="none", help="comma-separated, or `all`: each regime's arms")
    p.add_argument("--seed", type=int, default=999)
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override a profile or recipe value (JSON), e.g. cnn_dense=128")
    args = p.parse_args(argv)
    import evidence_plan as ep
    from evidence_fmnist import load_data, regime_data, run

    plan = ep.load_plan(ep.PLAN_PATHS[2])
    cfg = dict(plan["profiles"][args.base], **plan["recipe"])
    for item in args.set:
        key, value = item.split("=", 1)
        cfg[key] = json.loads(value)
    data = load_data()
    for regime in args.regimes.split(","):
        d = regime_data(regime, args.seed, cfg, data)
        arms = args.arms.split(",")
        if args.arms == "all":
            arms = plan["regimes"].get(regime, {}).get("arms", SEQ1D_ARMS if regime == "seq1d" else [])
        for arm in arms:
            t0 = time.perf_counter()
            rec = run(regime, arm, args.seed, cfg, plan["recipe"], d)
            extra = (f"  train loss {rec['train_loss']:.4f}  test {rec['test_acc']:.4f}"
                     if arm == "none" else "")
            print(f"{regime:8s} {arm:13s} fit {rec['seconds']:6.1f} s  with scoring "
                  f"{time.perf_counter() - t0:6.1f} s{extra}", flush=True)


if __name__ == "__main__":
    main()
