"""Corpora: the manifest of (reference, distorted) pairs, the embedded demo corpus, Netflix-format dataset import."""
