"""sheer: a load balancer that stays out of sight."""

__version__ = "0.1.0"
