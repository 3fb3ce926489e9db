"""Errors that the CLI turns into one clear line (and exit code 2) instead of a traceback."""


class BabyfaceError(Exception):
    """A problem with the user's input that they can fix; the message says what and how."""


class DataError(BabyfaceError):
    """Missing, empty or malformed dataset folders, or an image that cannot be used."""


class ImageDecodeError(DataError):
    """One file could not be decoded as an image (skipped unless --strict)."""


class UnsupportedImageError(ImageDecodeError):
    """A file that is not one of the allowed image formats, judged by its bytes (whatever its name or declared type)."""


class ImageTooLargeError(ImageDecodeError):
    """An image whose header says it has too many pixels, or would take too much memory to decode."""

    def __init__(self, message: str, header=None, limit: str = "pixels"):
        super().__init__(message)
        self.header = header  # babyface.data.images.ImageHeader
        self.limit = limit  # "pixels" or "memory"


class BundleError(BabyfaceError):
    """A model bundle that is missing, corrupt, foreign or from an unsupported format version."""


class OutputExistsError(BabyfaceError):
    """An output folder or file already holds results and --overwrite was not given."""
