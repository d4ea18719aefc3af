"""The extract stage: one libvmaf pass per pair, behind a content-addressed cache, into features.parquet."""
