"""Pure, I/O-free codecs for everything the appliance puts on the wire."""
