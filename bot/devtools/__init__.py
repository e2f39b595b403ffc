"""Development tools: the fake WeChat API used by tests, benchmarks and ``lawbot serve --dev``."""
