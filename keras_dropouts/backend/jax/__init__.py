"""What JAX does differently: a flat noise draw, int8 pools, trace-proof table constants."""
