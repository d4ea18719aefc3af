"""The gate stage: contract, ops, golden, fidelity and parity checks that stop a model unfit to ship."""
