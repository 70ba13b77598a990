"""Monitoring: read a server's HTTP monitoring port (8222) into dataclasses (httpx; no rich, no Typer)."""
