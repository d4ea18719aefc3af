"""The label stage: soft labels from the teacher, subjective scores joined, content-hash splits."""
