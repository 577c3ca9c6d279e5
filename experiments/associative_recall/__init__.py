"""Associative-recall (MQAR) capacity of the delta rule against the gated delta rule."""
