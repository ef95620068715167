"""Benchmarks of sheer against Debian's nginx, side by side in the lab (`python -m bench`, `make bench`).

Both proxies run the same configuration in the proxy namespace, one after the other (A B A B ...),
so every ratio compares two runs of the same minutes on the same noisy machine."""
