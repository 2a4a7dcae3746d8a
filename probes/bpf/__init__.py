"""The BPF TX-path tracer: the BPF C program, its loader, record decoding, trace windows, headers."""
