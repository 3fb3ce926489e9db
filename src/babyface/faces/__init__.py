"""Face detection and framing: the detectors (a registry), the squares they cut, and the framing record that
ties a model to the crops it was trained on."""

# importing registers the detectors, in the order --detector lists them
# isort: off
from babyface.faces import blazeface  # noqa: F401
from babyface.faces import mtcnn  # noqa: F401
from babyface.faces import haar  # noqa: F401
# isort: on
