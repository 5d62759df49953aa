"""The kernel: settings, errors, identifiers, masking, time. Imports nothing else of citybase."""
