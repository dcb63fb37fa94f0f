"""ockam-appliance: Ockam-style relays and portals as one network appliance."""

__version__ = "0.1.0"
