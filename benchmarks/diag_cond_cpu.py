"""Issue 25 diagnosis: what does a `lax.switch` over subset sizes cost a jitted gradient on
the CPU, and does it depend on the number of threads?

Plain JAX, no Keras: `--blocks` residual MLP blocks (width 192, hidden 768, `--tokens`
tokens, batch `--batch`), `jax.grad` of the summed output, jitted. Configurations, each
compiled once and timed over `--steps` calls, in a shuffled order every repeat:

- `plain`: the blocks on the whole batch (the reference);
- `switch_full`: each block's branch inside a `lax.switch` over the sizes of
  `--buckets` buckets, the whole batch selected (what `StochasticResidual` runs at rate 0);
- `switch_<k>`: the same switch with size k selected (the branch on the first k rows,
  scattered back);
- `direct_<k>`: the branch on the first k rows without a switch (a static size: the
  saving the switch could at best give);
- `remat_<k>` (with `--remat`): the switch of `switch_<k>` with each branch under
  `jax.checkpoint`, so that only its inputs cross the conditional and the backward pass
  recomputes the branch's forward.

Prints the median ratio to `plain` of the same repeat with its 25-75% range. Run it once as
it is and once under `taskset -c 0` to see whether the switch's cost depends on the two
threads.

Usage:
    python benchmarks/diag_cond_cpu.py --repeats 7
"""

import argparse
import random
import time

import jax
import jax.numpy as jnp
import numpy as np


def params(key, blocks, width, hidden):
    keys = jax.random.split(key, 2 * blocks)
    return [(jax.random.normal(keys[2 * i], (width, hidden)) * 0.02,
             jax.random.normal(keys[2 * i + 1], (hidden, width)) * 0.02) for i in range(blocks)]


def branch(p, x):
    w1, w2 = p
    return jax.nn.gelu(x @ w1) @ w2


def on_rows(p, x, k):
    """The branch on the first k rows, zeros elsewhere (static k)."""
    if k == 0:
        return jnp.zeros_like(x)
    if k == x.shape[0]:
        return branch(p, x)
    return jnp.zeros_like(x).at[:k].set(branch(p, x[:k]))


def make(kind, sizes, k=None):
    wrap = jax.checkpoint if kind == "remat" else (lambda f: f)

    def forward(ps, x, index):
        for p in ps:
            if kind == "plain":
                r = branch(p, x)
            elif kind == "direct":
                r = on_rows(p, x, k)
            else:
                fns = [wrap(lambda x, p=p, s=s: on_rows(p, x, s)) for s in sizes]
                r = jax.lax.switch(index, fns, x)
            x = x + r
        return jnp.sum(x)

    return jax.jit(jax.grad(forward))


def parse_args():
    """The command line shared with diag_cond_cpu_tf.py."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=65)
    ap.add_argument("--buckets", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--remat", action="store_true", help="add the remat_<k> configurations")
    args = ap.parse_args()
    args.rows = args.batch * args.tokens
    args.sizes = [round(args.rows * i / args.buckets) for i in range(args.buckets + 1)]
    return args


def configurations(args, make):
    """name -> (compiled function, selected index), `make(kind, k=None)` compiling one."""
    last = len(args.sizes) - 1
    configs = {"plain": (make("plain"), 0), "switch_full": (make("switch"), last)}
    if args.remat:
        configs["remat_full"] = (make("remat"), last)
    for i, k in enumerate(args.sizes[1:-1], start=1):
        configs[f"switch_{k}"] = (make("switch"), i)
        configs[f"direct_{k}"] = (make("direct", k), 0)
        if args.remat:
            configs[f"remat_{k}"] = (make("remat"), i)
    return configs


def compare(args, configs, call, wait, header):
    """Times every configuration (`call(fn, index)` one step, `wait(out)` its end) in a
    shuffled order each repeat and prints the ratios to `plain`."""
    for fn, index in configs.values():  # compile and warm up
        wait(call(fn, index))
    ratios = {name: [] for name in configs}
    for _ in range(args.repeats):
        times = {}
        order = list(configs)
        random.shuffle(order)
        for name in order:
            fn, index = configs[name]
            t0 = time.perf_counter()
            for _ in range(args.steps):
                out = call(fn, index)
            wait(out)
            times[name] = (time.perf_counter() - t0) / args.steps
        for name in configs:
            ratios[name].append(times[name] / times["plain"])
    print(f"{header}, {args.blocks} blocks, {args.rows} rows (batch {args.batch} x "
          f"{args.tokens} tokens), sizes {args.sizes}; plain {1e3 * times['plain']:.1f} ms/step")
    for name, r in ratios.items():
        q = np.percentile(r, [25, 50, 75])
        print(f"  {name:14s} {q[1]:.3f} [{q[0]:.3f}, {q[2]:.3f}]")


def main():
    args = parse_args()
    ps = params(jax.random.PRNGKey(0), args.blocks, 192, 768)
    x = jax.random.normal(jax.random.PRNGKey(1), (args.rows, 192))
    configs = configurations(args, lambda kind, k=None: make(kind, args.sizes, k))
    compare(args, configs, lambda fn, index: fn(ps, x, index), jax.block_until_ready, f"jax {jax.__version__}")


if __name__ == "__main__":
    main()
