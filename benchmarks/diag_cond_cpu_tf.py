"""Issue 25 diagnosis on TensorFlow: what does a `tf.switch_case` over subset sizes cost
an XLA-compiled gradient on the CPU? (`diag_cond_cpu.py`'s question for TensorFlow.)

Plain TensorFlow, no Keras: `--blocks` residual MLP blocks (width 192, hidden 768,
`--tokens` tokens, batch `--batch`), the gradient of the summed output with respect to
the weights, in a `tf.function(jit_compile=True)`. Configurations, each compiled once and
timed over `--steps` calls, in a shuffled order every repeat:

- `plain`: the blocks on the whole batch (the reference);
- `switch_full` / `switch_<k>`: each branch inside a `tf.switch_case` over the sizes of
  `--buckets` buckets, the whole batch / the first k rows selected;
- `direct_<k>`: the branch on the first k rows without a switch (the best a switch can do);
- `remat_full` / `remat_<k>`: the switch with each branch under `tf.recompute_grad`, so
  that only its inputs cross the conditional.

Prints the median ratio to `plain` of the same repeat with its 25-75% range, and the
plain step's time (to compare with a Keras `fit` step of the same model).

Usage:
    python benchmarks/diag_cond_cpu_tf.py --repeats 7
"""

import diag_cond_cpu  # its command line and timing loop
import numpy as np
import tensorflow as tf


def branch(w1, w2, x):
    return tf.matmul(tf.nn.gelu(tf.matmul(x, w1)), w2)


def on_rows(w1, w2, x, k):
    """The branch on the first k rows, zeros elsewhere (static k)."""
    if k == 0:
        return tf.zeros_like(x)
    if k == x.shape[0]:
        return branch(w1, w2, x)
    return tf.concat([branch(w1, w2, x[:k]), tf.zeros_like(x[k:])], axis=0)


def make(kind, sizes, ws, k=None):
    def forward(x, index):
        for w1, w2 in ws:
            if kind == "plain":
                r = branch(w1, w2, x)
            elif kind == "direct":
                r = on_rows(w1, w2, x, k)
            else:
                def fn_for(s, w1=w1, w2=w2):
                    f = lambda x, a, b: on_rows(a, b, x, s)  # noqa: E731
                    f = tf.recompute_grad(f) if kind == "remat" else f
                    return lambda: f(x, w1, w2)

                r = tf.switch_case(index, [fn_for(s) for s in sizes])
            x = x + r
        return tf.reduce_sum(x)

    @tf.function(jit_compile=True)
    def step(x, index):
        with tf.GradientTape() as tape:
            tape.watch([w for pair in ws for w in pair])
            loss = forward(x, index)
        return tape.gradient(loss, [w for pair in ws for w in pair])

    return step


def main():
    args = diag_cond_cpu.parse_args()
    rng = np.random.default_rng(0)

    def normal(*shape, scale=1.0):
        return tf.constant(rng.normal(size=shape).astype("float32") * scale)

    ws = [(normal(192, 768, scale=0.02), normal(768, 192, scale=0.02)) for _ in range(args.blocks)]
    x = normal(args.rows, 192)
    configs = diag_cond_cpu.configurations(args, lambda kind, k=None: make(kind, args.sizes, ws, k))
    diag_cond_cpu.compare(
        args, configs, lambda fn, index: fn(x, tf.constant(index)), lambda out: out[0].numpy(),
        f"tensorflow {tf.__version__}",
    )


if __name__ == "__main__":
    main()
