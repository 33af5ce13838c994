"""The run folder: its layout, settings file, atomic writes, locks and figures. Imports no torch."""
