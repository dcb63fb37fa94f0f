"""`make bench`: our portals measured against direct TCP and other forwarders in one run."""
