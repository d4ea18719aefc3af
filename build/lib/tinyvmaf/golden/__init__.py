"""The golden stage: the extractor against Netflix's and the project's golden values, the teacher against libvmaf."""
