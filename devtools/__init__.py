"""Developer tools of the MTAN study: the chaos test and the benchmarks (not installed with the package)."""
