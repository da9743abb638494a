"""trialdesk: run interventional clinical trials from a machine-readable protocol."""

__version__ = "0.1.0"
