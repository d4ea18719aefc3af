"""The student: the MLP that ships (normalisation inside) and the checkpoint contract that carries it."""
