"""The `keras.ops` reference implementations every backend starts from."""
