"""esign: a signing workflow for ward and commune People's Committees."""

__version__ = "0.1.0"
