"""Face detection and framing: the detectors (a registry), the squares they cut, and the framing record that
ties a model to the crops it was trained on."""
