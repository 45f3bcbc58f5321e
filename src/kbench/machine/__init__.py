"""The machine: the environment fingerprint, the machine check, the GEMM peak and its probe."""
