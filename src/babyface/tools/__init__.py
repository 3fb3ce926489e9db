"""The command modules that make or check datasets and the demo: audit, data split, data crop, synth, demo.
Stages never import these; the CLI and the Python API do."""
