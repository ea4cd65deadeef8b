"""What torch does differently: the eager fast path (raw torch calls, no host sync)."""
