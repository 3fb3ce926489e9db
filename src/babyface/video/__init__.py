"""Video: frames from files and cameras (``camera``), faces found, tracked, classified and smoothed over time
(``analysis``). The apps (predict on videos, serve's live view, watch) build on it; it never trains."""
