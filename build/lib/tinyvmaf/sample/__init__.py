"""The sample stage: teacher-labelled feature vectors drawn across the space real videos reach."""
