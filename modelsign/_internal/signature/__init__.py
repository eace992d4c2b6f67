"""Signing and verification: keys, certificates, statements and bundles."""
