"""news-monitor benchmarks: `make bench` / `make bench-json [ONLY=prefix]`."""
