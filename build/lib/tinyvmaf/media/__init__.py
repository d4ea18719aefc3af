"""Media: finding the FFmpeg that carries libvmaf, describing clips (raw YUV geometry or containers), probing them."""
