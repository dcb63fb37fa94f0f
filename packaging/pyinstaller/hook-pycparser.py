"""pycparser (under cffi, under PyNaCl) for the frozen `ockam`: PyInstaller's own hook asks for
its generated parser tables (lextab, yacctab), which the installed pycparser does not ship
(it builds them in memory), so each build reported them missing. Nothing to add."""

hiddenimports = []
