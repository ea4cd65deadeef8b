"""What TensorFlow does differently: replica-independent noise under `tf.distribute`,
bfloat16 pools, init-scope table constants, the consistency term's XLA form."""
