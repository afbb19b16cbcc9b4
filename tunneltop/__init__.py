"""tunneltop: htop for Cloudflare Tunnels."""

__version__ = "0.1.0"
