"""sheer: a load balancer that stays out of sight."""

__version__ = "0.1.0"
NGINX_VERSION = "1.22.1"    # the nginx whose behaviour sheer is measured against (Debian's, nginx-tests)
