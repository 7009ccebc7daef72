"""news-monitor: watches news feeds and alerts when an article matters."""

__version__ = "0.1.0"
